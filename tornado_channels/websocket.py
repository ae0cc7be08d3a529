"""The WebSocket edge: subscribe to the channel in the URL; chat into it."""

from __future__ import annotations

from typing import Any

from tornado.websocket import WebSocketHandler

from .broker import BrokerUnavailable, PublishError
from .channels import Channel, InvalidChannel, parse_channel
from .config import ChannelConfig
from .frames import CLOSE_POLICY_VIOLATION, CLOSE_TRY_AGAIN_LATER
from .handlers import JSONErrorsMixin, authorize, broker_unavailable, invalid_channel
from .hooks import ChannelHooks, Reject, resolve
from .node import Node


class ChannelSocketHandler(JSONErrorsMixin, WebSocketHandler):
    """A WebSocket subscribed to one channel; every frame it sends is published there.

    The subscription is in effect before the handshake is answered, so a
    client that has seen its 101 cannot miss a message published after it.
    Problems found before the upgrade (bad name, refused, broker down) are
    answered like any HTTP error: a status and a JSON body.
    """

    def initialize(self, node: Node, hooks: ChannelHooks, config: ChannelConfig) -> None:
        """Take the shared node, hooks and config from the route table."""
        self.node = node
        self.hooks = hooks
        self.config = config
        self._live = False

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Validate, authorize and subscribe; then run the WebSocket until it closes."""
        try:
            channel = parse_channel(kwargs["path"])
        except InvalidChannel as exc:
            raise invalid_channel(exc) from None
        await authorize(
            self.hooks.authorize_subscribe(self.request, channel),
            f"subscribing to '{channel}' is not allowed",
        )
        self.channel: Channel = channel
        try:
            await self.node.subscribe(channel, self)
        except BrokerUnavailable as exc:
            raise broker_unavailable(exc) from None
        try:
            # Returns when the connection ends (or the handshake fails).
            await super().get(*args, **kwargs)
        finally:
            self.node.unsubscribe(channel, self)

    def open(self, *args: Any, **kwargs: Any) -> None:
        """The handshake is done: frames may flow to the client from now on."""
        self._live = True

    async def on_message(self, message: str | bytes) -> None:
        """Publish the client's message to its channel, through the message hook."""
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

    # Subscriber protocol (see hub.Subscriber)

    def send_frame(self, frame: bytes) -> None:
        """Write a pre-encoded frame straight to the socket (no per-call Task)."""
        connection = self.ws_connection
        if not self._live or connection is None or connection.is_closing():
            return
        stream = connection.stream
        if stream is not None:
            # IOStream.write retrieves its own future's exception, so a write
            # that fails later leaves no "exception was never retrieved" behind.
            stream.write(frame)

    def buffered_bytes(self) -> int:
        """Bytes written to this client that the kernel has not yet accepted."""
        connection = self.ws_connection
        stream = getattr(connection, "stream", None)
        # IOStream has no public accessor for this; _write_buffer is its queue.
        buffer = getattr(stream, "_write_buffer", None)
        return len(buffer) if buffer is not None else 0

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
