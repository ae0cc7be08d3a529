"""Prometheus metrics of one node, read from its plain counters at scrape time.

Nothing here is global: each node has its own registry, so many nodes (tests,
or a host application with several) live in one process without collisions.
The hub and the brokers only increment integers; this module turns them into
metric families when scraped, so delivery never calls into prometheus_client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    # Only for annotations: node.py imports this module.
    from ..node import Node

NAMESPACE = "tornado_channels"

#: Publish latency buckets, in seconds: a local Redis answers in well under a
#: millisecond, a loaded or remote one in tens of milliseconds.
PUBLISH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


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
        failures = CounterMetricFamily(
            f"{NAMESPACE}_publish_failures",
            "Publishes the broker did not accept, by reason.",
            labels=["reason"],
        )
        for reason, count in node.publish_failures.items():
            failures.add_metric([reason], count)
        yield failures


class NodeMetrics:
    """A node's private registry, and the publish latency histogram it observes."""

    def __init__(self, node: Node) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(NodeCollector(node))
        # registry=None keeps the histogram out of prometheus_client's global
        # registry; it is registered into this node's registry instead.
        self.publish_seconds = Histogram(
            f"{NAMESPACE}_publish_seconds",
            "Time from publish until the broker accepted it (successful publishes).",
            buckets=PUBLISH_BUCKETS,
            registry=None,
        )
        self.registry.register(self.publish_seconds)
