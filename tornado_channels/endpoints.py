"""Endpoints under ``/_/``: batch publishing, and operations.

``/_/publish`` publishes many messages in one request.  ``/_/metrics`` (for
Prometheus) and ``/_/stats`` (for people) describe this process only; with
several processes behind a proxy, scrape each one directly.  ``/_/stats``
names channels, which can be private: public deployments should restrict
``/_/`` at the proxy.
"""

from __future__ import annotations

import tornado.web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .batch import InvalidBatch, parse_batch
from .broker import BrokerUnavailable, PublishOutcomeUnknown
from .config import ChannelConfig
from .handlers import ApiError, JSONErrorsMixin, PublishingMixin, authorize, publish_errors
from .hooks import ChannelHooks
from .node import Node


@tornado.web.stream_request_body
class BatchPublishHandler(PublishingMixin):
    """``POST /_/publish``: many messages, to many channels, in one request.

    The body is described in batch.py.  Everything is checked first (shape,
    names, sizes, the publish key and the ``authorize_publish`` hook for
    every target), then the batch is published as one broker operation, in
    order: all of it (202, with each message's position) or none of it.
    One request carries the per-request cost of HTTP for hundreds of
    messages, which is what makes it fast.
    """

    SUPPORTED_METHODS = ("POST",)
    too_large_code = "batch_too_large"

    def initialize(self, node: Node, hooks: ChannelHooks, config: ChannelConfig) -> None:
        """Take the shared node, hooks and config from the route table."""
        self.node = node
        self.hooks = hooks
        self.config = config
        self.body_limit = config.max_batch_bytes

    def prepare(self) -> None:
        """Check the key and the declared size before the body is read."""
        self.start_publish()

    async def post(self) -> None:
        """Check the whole batch, publish it, answer 202 with the positions."""
        config = self.config
        try:
            messages = parse_batch(
                self.body(),
                max_messages=config.max_batch_messages,
                max_message_size=config.max_message_size,
            )
        except InvalidBatch as exc:
            details = {} if exc.index is None else {"index": exc.index}
            status = 413 if exc.too_large else 400
            raise ApiError(status, exc.error, str(exc), None, details) from None
        checked = set()
        for target, _ in messages:
            if target not in checked:
                checked.add(target)
                await authorize(
                    self.hooks.authorize_publish(self.request, target),
                    f"publishing to '{target}' is not allowed",
                )
        try:
            positions = await self.node.publish_many(messages) if messages else []
        except (PublishOutcomeUnknown, BrokerUnavailable) as exc:
            raise publish_errors(exc) from None
        self.set_status(202)
        self.finish({"published": len(positions), "positions": list(map(str, positions))})


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
