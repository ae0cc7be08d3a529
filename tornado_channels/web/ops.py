"""Operations endpoints: ``/_/health`` for proxies, ``/_/metrics`` for Prometheus, ``/_/stats``.

``/_/openapi.json`` describes the HTTP API: a JSON file in the package,
served as it is.

They describe this process only; with several processes behind a proxy,
scrape each one directly.  ``/_/stats`` names channels, which can be private:
public deployments should restrict ``/_/`` at the proxy.  (``/_/publish`` is
in publishing.py.)
"""

from __future__ import annotations

from importlib import resources

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..node import Node
from .errors import JSON_TYPE, JSONErrorsMixin
from .metrics import NodeMetrics


class HealthHandler(JSONErrorsMixin):
    """``GET /_/health``: 200 while the broker is connected, 503 otherwise."""

    def initialize(self, node: Node) -> None:
        """Take the node from the route table."""
        self.node = node

    def get(self) -> None:
        """Report whether the broker is connected."""
        connected = self.node.connected
        self.set_status(200 if connected else 503)
        self.set_header("Cache-Control", "no-store")
        self.finish(
            {
                "status": "ok" if connected else "unavailable",
                "broker": self.node.broker.kind,
                "connected": connected,
                "subscriptions": len(self.node.hub),
            }
        )

    head = get


class MetricsHandler(JSONErrorsMixin):
    """``GET /_/metrics``: this node's metrics in the Prometheus text format."""

    def initialize(self, metrics: NodeMetrics) -> None:
        """Take the node's metrics from the route table."""
        self.metrics = metrics

    def get(self) -> None:
        """Render the node's registry as it is now."""
        # Scrapes must always see fresh values, never a cached copy.
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(self.metrics.registry))

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


#: The OpenAPI document, read once (it is part of the package, like the templates).
OPENAPI = (resources.files(__package__) / "openapi.json").read_bytes()


class OpenAPIHandler(JSONErrorsMixin):
    """``GET /_/openapi.json``: the OpenAPI 3.1 description of this HTTP API."""

    def get(self) -> None:
        """Send the document."""
        self.set_header("Content-Type", JSON_TYPE)
        self.set_header("Cache-Control", "public, max-age=300")
        self.finish(OPENAPI)

    head = get
