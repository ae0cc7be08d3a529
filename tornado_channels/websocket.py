"""The WebSocket edge: subscribe to the channel in the URL; chat into it."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

from tornado.iostream import IOStream
from tornado.websocket import WebSocketHandler

from .broker import BrokerUnavailable, PublishError, Recovered
from .channels import Channel, InvalidChannel, parse_channel
from .config import ChannelConfig
from .frames import (
    CLOSE_POLICY_VIOLATION,
    CLOSE_SLOW_CONSUMER,
    CLOSE_TRY_AGAIN_LATER,
    control_frame,
    envelope_frame,
)
from .handlers import ApiError, JSONErrorsMixin, authorize, broker_unavailable, invalid_channel
from .history import InvalidPosition, Position
from .hooks import ChannelHooks, Reject, resolve
from .node import Node
from .protocol import ChannelProtocol13, WebSocketParams
from .ratelimit import TokenBucket


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
        self._budget = TokenBucket(config.client_rate, config.client_burst, time.monotonic())
        #: Envelope frames (with positions) instead of raw payloads: opted in.
        self.envelope = False
        self._since: Position | None = None
        # Live frames that arrive while a recovery is being sent: (seq, frame).
        self._held: list[tuple[int, bytes]] | None = None
        self._held_bytes = 0

    async def get(self, *args: Any, **kwargs: Any) -> None:
        """Validate, authorize and subscribe; then run the WebSocket until it closes."""
        try:
            channel = parse_channel(kwargs["path"])
        except InvalidChannel as exc:
            raise invalid_channel(exc) from None
        origin = self.request.headers.get("Origin")
        if origin is not None and not self._same_origin(origin) and not self.check_origin(origin):
            # Tornado would refuse it too, a step later, with a text body.
            raise ApiError(
                403, "forbidden_origin", f"WebSocket connections from {origin} are not allowed"
            )
        since = self.get_query_argument("since", None)
        if since is not None:
            try:
                self._since = Position.parse(since)
            except InvalidPosition as exc:
                raise ApiError(400, "invalid_position", str(exc)) from None
            # Hold live frames from the moment of subscribing: none is lost
            # between the history read and the live stream.
            self._held = []
        self.envelope = since is not None or self.get_query_argument("positions", None) is not None
        cap = self.config.max_connections
        if cap and len(self.node.hub) >= cap:
            raise ApiError(
                503,
                "too_many_connections",
                f"this process is at its limit of {cap} WebSocket connections",
                {"Retry-After": "1"},
            )
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

    async def open(self, *args: Any, **kwargs: Any) -> None:
        """The handshake is done: frames flow from now on, after any recovery."""
        self._live = True
        if self._since is not None:
            await self._recover(self._since)

    async def _recover(self, since: Position) -> None:
        """Send what was missed after ``since``, its outcome, then the held live frames."""
        try:
            recovered = await self.node.recover(self.channel, since)
        except BrokerUnavailable as exc:
            recovered = Recovered([], False, f"broker unavailable: {exc}")
        last = since.seq
        stream = self._stream()
        for publication in recovered.publications:
            position = publication.position
            if stream is None or position is None or position.seq <= last:
                continue
            stream.write(envelope_frame(str(position), publication.payload))
            last = position.seq
        if stream is not None:
            outcome: dict[str, object] = {
                "recovered": recovered.complete,
                "missed": len(recovered.publications),
            }
            if not recovered.complete:
                outcome["reason"] = recovered.reason
            stream.write(control_frame(**outcome))
        held, self._held = self._held or [], None
        for seq, frame in held:
            # The seam: what the history already sent is not sent twice.
            if seq > last:
                self.send_frame(frame, seq)

    def check_origin(self, origin: str) -> bool:
        """A cross-origin handshake passes only from a trusted origin.

        Ours (``trusted_origins`` of this mount), or the host application's
        ``trusted_origins`` setting, which Tornado's own check consults.
        """
        return origin in self.config.trusted_origins or super().check_origin(origin)

    def _same_origin(self, origin: str) -> bool:
        # As Tornado compares them: the Origin's host and port against Host.
        return urlsplit(origin).netloc.lower() == self.request.headers.get("Host", "").lower()

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
        if self._held is not None:
            self._held.append((seq, frame))
            self._held_bytes += len(frame)
            if self._held_bytes > self.node.hub.max_buffered_bytes:
                # Held during recovery counts like unread: the same bound.
                self._held = None
                self.close(CLOSE_SLOW_CONSUMER, "slow consumer")
            return
        stream = self._stream()
        if stream is not None:
            # IOStream.write retrieves its own future's exception, so a write
            # that fails later leaves no "exception was never retrieved" behind.
            stream.write(frame)

    def _stream(self) -> IOStream | None:
        """The socket's stream while frames may be written to it, else None."""
        connection = self.ws_connection
        if not self._live or connection is None or connection.is_closing():
            return None
        return connection.stream

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
