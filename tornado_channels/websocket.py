"""The WebSocket edge: subscribe to the channel in the URL; chat into it."""

from __future__ import annotations

import time
from typing import Any

from tornado.websocket import WebSocketHandler

from .broker import BrokerUnavailable, PublishError
from .config import ChannelConfig
from .frames import CLOSE_POLICY_VIOLATION, CLOSE_TRY_AGAIN_LATER
from .handlers import broker_unavailable
from .hooks import ChannelHooks, Reject, resolve
from .node import Node
from .protocol import ChannelProtocol13, WebSocketParams
from .ratelimit import TokenBucket
from .sockets import write_now
from .subscribers import SubscriberMixin


class ChannelSocketHandler(SubscriberMixin, WebSocketHandler):
    """A WebSocket subscribed to one channel; every frame it sends is published there.

    The subscription is in effect before the handshake is answered, so a
    client that has seen its 101 cannot miss a message published after it.
    Problems found before the upgrade (bad name, refused, broker down) are
    answered like any HTTP error: a status and a JSON body.

    Plain clients get each payload as it was published.  With ``?positions=1``
    they get JSON envelopes with positions, and with ``?since=<position>``
    they first get what they missed since then (see subscribers.py).
    """

    def initialize(self, node: Node, hooks: ChannelHooks, config: ChannelConfig) -> None:
        """Take the shared node, hooks and config from the route table."""
        super().initialize(node, hooks, config)
        self._live = False
        self._budget = TokenBucket(config.client_rate, config.client_burst, time.monotonic())

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Admit and subscribe; then run the WebSocket until it closes."""
        since = self.get_query_argument("since", None)
        if since is not None or self.get_query_argument("positions", None) is not None:
            self.encoding = "envelope"
        channel = await self.admit(kwargs["path"], since)
        try:
            await self.node.subscribe(channel, self)
        except BrokerUnavailable as exc:
            raise broker_unavailable(exc) from None
        try:
            # Returns when the connection ends (or the handshake fails).
            await super().get(*args, **kwargs)
        finally:
            self.node.unsubscribe(channel, self)

    async def open(self, *args: Any, **kwargs: Any) -> None:
        """The handshake is done: frames flow from now on, after any recovery."""
        self._live = True
        await self.resume()

    def check_origin(self, origin: str) -> bool:
        """Tornado's own check, a step after admit(): the same answer."""
        return self.origin_allowed(origin)

    async def on_message(self, message: str | bytes) -> None:
        """Publish the client's message to its channel, through the message hook."""
        if self.ws_connection is None:
            return  # Already closed by us (e.g. over its rate): publish nothing more.
        if not self.config.client_may_publish(self.channel.name):
            self.close(CLOSE_POLICY_VIOLATION, "publishing here is disabled for WebSocket clients")
            return
        # Tornado hands text frames over decoded; publish the exact bytes.
        raw = message.encode("utf-8") if isinstance(message, str) else message
        try:
            payload = await resolve(self.hooks.on_client_message(self.request, self.channel, raw))
        except Reject as exc:
            self.close(CLOSE_POLICY_VIOLATION, exc.reason[:100])
            return
        if payload is None:
            return
        try:
            await self.node.publish(self.channel, payload)
        except PublishError:
            self.close(CLOSE_TRY_AGAIN_LATER, "broker unavailable: message not published")

    def frame_received(self) -> None:
        """Spend one frame of the client's budget (called by the protocol, per frame).

        Past its rate and burst, the client is closed with 1008.
        """
        if not self._budget.take(time.monotonic()) and self.ws_connection is not None:
            self.close(CLOSE_POLICY_VIOLATION, "rate limit exceeded")

    # Subscriber protocol (see hub.Subscriber)

    def send_frame(self, frame: bytes, seq: int) -> None:
        """Write a pre-encoded frame straight to the socket (no per-call Task)."""
        if self._held is None or not self.hold(frame, seq):
            self.write_frame(frame)

    def write_frame(self, frame: bytes) -> None:
        """Write a frame to the socket now, unless the connection is closing or closed."""
        # Called once per subscriber per message: plain attribute reads
        # instead of is_closing(), which says the same (write_now copes with
        # a closed stream).
        connection = self.ws_connection
        if (
            self._live
            and connection is not None
            and not connection.client_terminated
            and not connection.server_terminated
            and connection.stream is not None
        ):
            write_now(connection.stream, frame)

    def buffered_bytes(self) -> int:
        """Bytes written to this client that the kernel has not yet accepted."""
        connection = self.ws_connection
        if connection is None or connection.stream is None:
            return 0
        # IOStream has no public accessor for this; _write_buffer is its queue.
        return len(connection.stream._write_buffer)

    # Tornado settings, taken from this mount point's config instead of the
    # application's, so a host application's own settings are left alone.

    @property
    def max_message_size(self) -> int:
        """Largest message accepted from the client; beyond it, close 1009."""
        return self.config.max_message_size

    @property
    def ping_interval(self) -> float | None:
        """Seconds between server pings; None disables them."""
        return self.config.ping_interval or None

    @property
    def ping_timeout(self) -> float | None:
        """Seconds without a pong before the peer is dropped."""
        return self.config.ping_timeout

    def get_compression_options(self) -> None:
        """No permessage-deflate.

        Frames are encoded once and shared by every subscriber; per-connection
        compression would make each one different.
        """
        return

    def get_websocket_protocol(self) -> ChannelProtocol13 | None:
        """Tornado's own, with a protocol that answers invalid close frames with 1002.

        The body is Tornado 6.6's, only the class substituted (see protocol.py
        for why, and for the private Tornado API this relies on).
        """
        websocket_version = self.request.headers.get("Sec-WebSocket-Version")
        if websocket_version == "13":
            params = WebSocketParams(
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_timeout,
                max_message_size=self.max_message_size,
                # None here (no permessage-deflate), but asked as Tornado asks.
                compression_options=self.get_compression_options(),  # type: ignore[func-returns-value]
            )
            return ChannelProtocol13(self, False, params)
        return None
