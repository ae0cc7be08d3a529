"""Prometheus metrics of one node, read from its plain counters at scrape time.

Nothing here is global: each node has its own registry, so many nodes (tests,
or a host application with several) live in one process without collisions.
The hub and the brokers only increment integers; this module turns them into
metric families when scraped, so delivery never calls into prometheus_client.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ..core.presence import MAX_SEGMENTS
from ..node import Node

NAMESPACE = "tornado_channels"


class NodeCollector:
    """Reads a node's counters and gauges when the registry is collected."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def describe(self) -> Iterator[Metric]:
        """The families :meth:`collect` yields, so the registry can check names."""
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        """One family per metric, with this moment's values."""
        node, hub = self.node, self.node.hub
        subscriptions = len(hub)

        def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"{NAMESPACE}_{name}", doc, value=value)

        def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(f"{NAMESPACE}_{name}", doc, value=value)

        # Each WebSocket subscribes to exactly one channel, so connections and
        # subscriptions are the same number today; both are exported so that
        # dashboards survive multi-channel sockets.
        yield gauge("connections", "WebSocket connections on this process.", subscriptions)
        yield gauge("subscriptions", "Channel subscriptions on this process.", subscriptions)
        yield gauge("channels", "Channels with subscribers on this process.", len(hub.channels()))
        yield gauge(
            "broker_connected", "1 while the broker is connected, else 0.", int(node.connected)
        )
        yield counter(
            "messages_published",
            "Publications the broker accepted from this process.",
            node.published,
        )
        yield counter(
            "messages_delivered",
            "Messages written to local subscribers (one per subscriber per message).",
            hub.delivered,
        )
        yield counter(
            "slow_consumer_disconnects",
            "Subscribers closed for leaving too much unread.",
            hub.slow_disconnects,
        )
        yield counter(
            "error_disconnects",
            "Subscribers closed because writing to them failed.",
            hub.error_disconnects,
        )
        yield counter(
            "broker_reconnects",
            "Times the broker reconnected after losing its connection.",
            node.broker.reconnects,
        )
        yield counter(
            "subscription_repairs",
            "Broker subscriptions the self-check found missing or unwanted, and repaired.",
            node.broker.repairs,
        )
        events = node.events
        if events is not None:
            yield counter(
                "events_delivered",
                "Lifecycle events this process delivered to --events-url (2xx).",
                events.delivered,
            )
            yield counter(
                "events_dropped",
                "Undelivered lifecycle events dropped, oldest first, past --events-max-backlog.",
                events.dropped,
            )
        yield _segments(node)
        failures = CounterMetricFamily(
            f"{NAMESPACE}_publish_failures",
            "Publishes the broker did not accept, by reason.",
            labels=["reason"],
        )
        for reason, count in node.publish_failures.items():
            failures.add_metric([reason], count)
        yield failures
        latency = node.publish_latency
        histogram = HistogramMetricFamily(
            f"{NAMESPACE}_publish_seconds",
            "Time from publish until the broker accepted it (successful publishes).",
        )
        histogram.add_metric(
            [],
            [(_bound(bound), count) for bound, count in latency.cumulative()],
            sum_value=latency.total,
        )
        yield histogram


def _segments(node: Node) -> GaugeMetricFamily:
    """Subscriptions per top-level segment: the largest :data:`MAX_SEGMENTS`, the rest as "other".

    Never one label per channel: a label set grows with every segment ever
    seen, so it is capped, and the biggest keep their own series.
    """
    family = GaugeMetricFamily(
        f"{NAMESPACE}_segment_subscriptions",
        "Subscriptions on this process per top-level segment (the biggest; the rest: other).",
        labels=["segment"],
    )
    segments = node.tally.segments
    top = segments.most_common(MAX_SEGMENTS)
    for segment, count in top:
        family.add_metric([segment], count)
    rest = sum(segments.values()) - sum(count for _, count in top)
    if rest:
        family.add_metric(["other"], rest)
    return family


def _bound(bound: float) -> str:
    """A bucket's upper bound as Prometheus writes it (``+Inf`` for the last)."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


class NodeMetrics:
    """A node's private registry: its counters, gauges and publish latency, read when scraped."""

    def __init__(self, node: Node) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(NodeCollector(node))
