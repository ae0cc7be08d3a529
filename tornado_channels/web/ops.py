"""Operations endpoints: ``/_/metrics`` for Prometheus, ``/_/stats`` for people.

Both describe this process only; with several processes behind a proxy,
scrape each one directly.  ``/_/stats`` names channels, which can be private:
public deployments should restrict ``/_/`` at the proxy.  (``/_/publish`` is
in publishing.py.)
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..node import Node
from ..web.pages import JSONErrorsMixin


class MetricsHandler(JSONErrorsMixin):
    """``GET /_/metrics``: this node's metrics in the Prometheus text format."""

    def initialize(self, node: Node) -> None:
        """Take the node from the route table."""
        self.node = node

    def get(self) -> None:
        """Render the node's registry as it is now."""
        # Scrapes must always see fresh values, never a cached copy.
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.node.metrics.registry))

    head = get


class StatsHandler(JSONErrorsMixin):
    """``GET /_/stats``: this node's connections and channels as JSON."""

    def initialize(self, node: Node) -> None:
        """Take the node from the route table."""
        self.node = node

    def get(self) -> None:
        """Report the broker state, the counters, and subscribers per channel."""
        node, hub = self.node, self.node.hub
        self.set_header("Cache-Control", "no-store")
        self.finish(
            {
                "broker": node.broker.kind,
                "connected": node.connected,
                # One channel per WebSocket today, so the two are equal.
                "connections": len(hub),
                "subscriptions": len(hub),
                "channels": hub.channels(),
                "published": node.published,
                "delivered": hub.delivered,
            }
        )

    head = get
