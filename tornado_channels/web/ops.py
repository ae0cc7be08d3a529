"""Operations endpoints: ``/_/health`` for proxies, ``/_/metrics`` for Prometheus, ``/_/stats``.

``/_/openapi.json`` describes the HTTP API: a JSON file in the package,
served as it is.

They describe this process only; with several processes behind a proxy,
scrape each one directly.  ``/_/stats`` counts for anyone, and names
channels (which can be private) only to the publish key's holders, or to
anyone on a server with no credentials configured at all (as the original):
a token-gated server never names them anonymously.  Public deployments
should restrict ``/_/`` at the proxy all the same.  (``/_/publish`` is in
publishing.py.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..node import Node
from .context import MountContext
from .errors import JSON_TYPE, JSONErrorsMixin
from .metrics import NodeMetrics
from .tokens import carries_key

#: The application setting naming what else ``/_/health`` reports: name -> a
#: function returning a JSON object (the server's outbox consumer).  Reported
#: only: readiness is the broker's alone.
HEALTH_REPORTS = "health_reports"


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
        body: dict[str, Any] = {
            "status": "ok" if connected else "unavailable",
            "broker": self.node.broker.kind,
            "connected": connected,
            "subscriptions": len(self.node.hub),
        }
        reports: Mapping[str, Callable[[], dict[str, Any]]] = self.settings.get(HEALTH_REPORTS, {})
        for name, report in reports.items():
            body[name] = report()
        self.finish(body)

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

    def initialize(self, mount: MountContext) -> None:
        """Take the node, the mount point's settings and token guard from the route table."""
        self.mount = mount

    def get(self) -> None:
        """Report the broker state, the counters, and subscribers per channel (to whom may see)."""
        node, hub = self.mount.node, self.mount.node.hub
        channels = hub.channels()
        stats: dict[str, object] = {
            "broker": node.broker.kind,
            "connected": node.connected,
            # One channel per WebSocket today, so the two are equal.
            "connections": len(hub),
            "subscriptions": len(hub),
            "channel_count": len(channels),
            "published": node.published,
            "delivered": hub.delivered,
        }
        if self.may_see_names():
            stats["channels"] = channels
        self.set_header("Cache-Control", "no-store")
        self.finish(stats)

    def may_see_names(self) -> bool:
        """Whether this request may see channel names, which can be private.

        With the publish key, always; without it, only where no credential
        is configured at all (neither a key nor tokens), since there anyone
        may subscribe to any channel anyway.
        """
        key = self.mount.config.publish_key
        if carries_key(self.request.headers, key):
            return True
        return key is None and not self.mount.guard.enabled

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
