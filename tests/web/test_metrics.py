"""The operations endpoints: /_/metrics (Prometheus) and /_/stats (JSON)."""

from __future__ import annotations

import asyncio
import json

import prometheus_client
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tornado.testing import gen_test
from tornado.web import Application

from tornado_channels import MemoryBroker, Node, make_app
from tornado_channels.brokers.base import PublishOutcomeUnknown
from tornado_channels.core.channels import parse_target
from tornado_channels.core.idempotency import Idempotency
from tornado_channels.core.presence import MAX_SEGMENTS
from tornado_channels.core.publication import Publication, Receipt
from tornado_channels.web.metrics import NodeMetrics

from ..helpers import NodeAppTestCase, receive

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample in a Prometheus text exposition, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; KeyError when it is missing."""
    return samples[(name, tuple(sorted(labels.items())))]


class OutcomeUnknownBroker(MemoryBroker):
    """A memory broker whose publishes never get an answer."""

    async def publish(
        self, publication: Publication, idempotency: Idempotency | None = None
    ) -> Receipt:
        raise PublishOutcomeUnknown("no answer")


class MetricsTestCase(NodeAppTestCase):
    """A standalone app on a started node, mounted at ``PREFIX``."""

    PREFIX = "/"

    def make_node(self) -> Node:
        return Node(MemoryBroker())

    def make_app(self, node: Node) -> Application:
        return make_app(node, prefix=self.PREFIX)

    async def metrics(self) -> Samples:
        response = await self.http_client.fetch(self.get_url(self.PREFIX + "_/metrics"))
        return parse(response.body.decode())


class MetricsEndpointTest(MetricsTestCase):
    @gen_test
    async def test_metrics_are_prometheus_text_that_parses(self) -> None:
        """GET /_/metrics is 200, uncached, Prometheus-typed, and parses with every metric."""
        response = await self.http_client.fetch(self.get_url("/_/metrics"))
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers["Content-Type"], prometheus_client.CONTENT_TYPE_LATEST)
        self.assertEqual(response.headers["Cache-Control"], "no-store")
        families = {f.name: f.type for f in text_string_to_metric_families(response.body.decode())}
        expected = {
            "connections": "gauge",
            "subscriptions": "gauge",
            "channels": "gauge",
            "broker_connected": "gauge",
            "messages_published": "counter",
            "messages_delivered": "counter",
            "slow_consumer_disconnects": "counter",
            "error_disconnects": "counter",
            "broker_reconnects": "counter",
            "subscription_repairs": "counter",
            "publish_failures": "counter",
            "publish_seconds": "histogram",
        }
        for name, typ in expected.items():
            self.assertEqual(families.get(f"tornado_channels_{name}"), typ, name)
        samples = parse(response.body.decode())
        self.assertEqual(value(samples, "tornado_channels_broker_connected"), 1)
        self.assertEqual(value(samples, "tornado_channels_broker_reconnects_total"), 0)

    @gen_test
    async def test_counters_move_when_messages_flow(self) -> None:
        """Three POSTs to two subscribers count 3 published, 6 delivered, 3 timed publishes."""
        first, second = await self.ws("/room"), await self.ws("/room")
        for n in range(3):
            self.assertEqual((await self.post("/room", f"m{n}".encode())).code, 202)
        for ws in (first, second):
            for n in range(3):
                self.assertEqual(await receive(ws), f"m{n}")
        samples = await self.metrics()
        self.assertEqual(value(samples, "tornado_channels_messages_published_total"), 3)
        self.assertEqual(value(samples, "tornado_channels_messages_delivered_total"), 6)
        self.assertEqual(value(samples, "tornado_channels_publish_seconds_count"), 3)
        self.assertEqual(value(samples, "tornado_channels_publish_seconds_bucket", le="+Inf"), 3)
        self.assertEqual(value(samples, "tornado_channels_connections"), 2)
        self.assertEqual(value(samples, "tornado_channels_subscriptions"), 2)
        self.assertEqual(value(samples, "tornado_channels_channels"), 1)

    @gen_test
    async def test_no_series_per_channel(self) -> None:
        """More channels add no series; more top-level segments, at most MAX_SEGMENTS + 1."""
        await self.ws("/users/one")
        self.assertEqual((await self.post("/users/one", b"x")).code, 202)
        before = set(await self.metrics())
        for n in range(30):
            await self.ws(f"/users/{n}")
            self.assertEqual((await self.post(f"/users/{n}/feed", b"x")).code, 202)
        self.assertEqual(set(await self.metrics()), before)
        for n in range(MAX_SEGMENTS + 10):
            await self.ws(f"/s{n}/feed")
        segments = [key for key in await self.metrics() if key[0].endswith("segment_subscriptions")]
        self.assertEqual(len(segments), MAX_SEGMENTS + 1)  # the biggest, and "other"

    @gen_test
    async def test_connections_drop_when_a_client_leaves(self) -> None:
        """After one of two clients closes, the connections gauge falls to 1."""
        await self.ws("/a")
        leaving = await self.ws("/b")
        self.assertEqual(value(await self.metrics(), "tornado_channels_connections"), 2)
        leaving.close()
        for _ in range(100):
            if value(await self.metrics(), "tornado_channels_connections") == 1:
                break
            await asyncio.sleep(0.02)
        samples = await self.metrics()
        self.assertEqual(value(samples, "tornado_channels_connections"), 1)
        self.assertEqual(value(samples, "tornado_channels_channels"), 1)

    @gen_test
    async def test_broker_down_counts_unavailable_publishes(self) -> None:
        """With the broker stopped, connected is 0 and a 503 POST counts one unavailable failure."""
        await self.node.broker.stop()
        self.assertEqual((await self.post("/a", b"x")).code, 503)
        samples = await self.metrics()
        self.assertEqual(value(samples, "tornado_channels_broker_connected"), 0)
        failures = "tornado_channels_publish_failures_total"
        self.assertEqual(value(samples, failures, reason="unavailable"), 1)
        self.assertEqual(value(samples, failures, reason="outcome_unknown"), 0)
        self.assertEqual(value(samples, "tornado_channels_messages_published_total"), 0)
        self.assertEqual(value(samples, "tornado_channels_publish_seconds_count"), 0)

    @gen_test
    async def test_two_nodes_have_independent_metrics(self) -> None:
        """A second node in the same process counts only its own publishes, in its own registry."""
        other = Node(MemoryBroker())
        await other.start()
        try:
            make_app(other)  # building a second app must not collide with the first
            await other.publish(parse_target("x"), b"1")
            await other.publish(parse_target("x"), b"2")
            self.assertEqual((await self.post("/y", b"3")).code, 202)
            mine = await self.metrics()
            theirs = parse(generate_latest(NodeMetrics(other).registry).decode())
        finally:
            await other.stop()
        published = "tornado_channels_messages_published_total"
        self.assertEqual((value(mine, published), value(theirs, published)), (1, 2))
        # Nothing leaks into prometheus_client's process-wide default registry.
        global_names = {f.name for f in prometheus_client.REGISTRY.collect()}
        self.assertFalse({n for n in global_names if n.startswith("tornado_channels")})


class OutcomeUnknownTest(MetricsTestCase):
    def make_node(self) -> Node:
        return Node(OutcomeUnknownBroker())

    @gen_test
    async def test_unanswered_publish_counts_outcome_unknown(self) -> None:
        """A publish the broker never answers is a 504 counted as reason="outcome_unknown"."""
        self.assertEqual((await self.post("/a", b"x")).code, 504)
        samples = await self.metrics()
        failures = "tornado_channels_publish_failures_total"
        self.assertEqual(value(samples, failures, reason="outcome_unknown"), 1)
        self.assertEqual(value(samples, failures, reason="unavailable"), 0)


class MountedTest(MetricsTestCase):
    PREFIX = "/live/"

    @gen_test
    async def test_endpoints_live_under_the_mount_prefix(self) -> None:
        """Mounted at /live/, metrics and stats answer at /live/_/metrics and /live/_/stats."""
        await self.ws("/live/a")
        self.assertEqual(value(await self.metrics(), "tornado_channels_connections"), 1)
        response = await self.http_client.fetch(self.get_url("/live/_/stats"))
        self.assertEqual(json.loads(response.body)["channels"], {"a": 1})


class StatsTest(MetricsTestCase):
    @gen_test
    async def test_stats_report_subscribers_per_channel(self) -> None:
        """GET /_/stats is uncached JSON with the broker, counters, and subscribers per channel."""
        one, _, _ = await self.ws("/users/1"), await self.ws("/users/1"), await self.ws("/users/2")
        self.assertEqual((await self.post("/users/1", b"hi")).code, 202)
        await receive(one)
        response = await self.http_client.fetch(self.get_url("/_/stats"))
        self.assertEqual(response.headers["Cache-Control"], "no-store")
        self.assertEqual(
            json.loads(response.body),
            {
                "broker": "memory",
                "connected": True,
                "connections": 3,
                "subscriptions": 3,
                "channel_count": 2,
                "channels": {"users/1": 2, "users/2": 1},
                "published": 1,
                "delivered": 2,
            },
        )


class SegmentMetricsTest(NodeAppTestCase):
    """Subscriptions per top-level segment, never per channel."""

    @gen_test
    async def test_segments_are_capped_and_the_rest_is_other(self) -> None:
        """The biggest segments keep a series each; beyond the cap they add up under 'other'."""
        from tornado_channels.core.presence import MAX_SEGMENTS

        for number in range(MAX_SEGMENTS + 5):
            self.node.tally.add(f"s{number:03d}/x")
        self.node.tally.add("s000/y")
        samples = parse(generate_latest(NodeMetrics(self.node).registry).decode())
        series = {
            labels: v
            for (name, labels), v in samples.items()
            if name == "tornado_channels_segment_subscriptions"
        }
        assert len(series) == MAX_SEGMENTS + 1
        assert series[(("segment", "s000"),)] == 2
        assert series[(("segment", "other"),)] == 5
