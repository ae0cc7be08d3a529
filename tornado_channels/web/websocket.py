"""The WebSocket edge: subscribe to the channel in the URL; chat into it.

The handler checks and answers the handshake itself, then hands the socket
to a :class:`~.connection.WebSocketConnection` on the event loop's own
transport (see connection.py for why).  The handler stays the hub's
subscriber: it holds the channel, the request (for the hooks) and the
recovery state, and writes frames to its connection.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import time
from typing import cast

from tornado.iostream import IOStream

from ..brokers.base import BrokerUnavailable, PublishError
from ..core.frames import CLOSE_INTERNAL_ERROR, CLOSE_POLICY_VIOLATION, CLOSE_TRY_AGAIN_LATER
from ..core.ratelimit import TokenBucket
from ..node import Node
from ..web.config import ChannelConfig
from ..web.connection import Heartbeat, StreamTransport, WebSocketConnection
from ..web.hooks import ChannelHooks, Reject, resolve
from ..web.pages import ApiError, broker_unavailable
from ..web.subscribing import SubscriberMixin

log = logging.getLogger("tornado_channels.websocket")

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Client messages waiting to be published past which reading pauses.
_INBOX_LIMIT = 64


class ChannelSocketHandler(SubscriberMixin):
    """A WebSocket subscribed to one channel; every message it sends is published there.

    The subscription is in effect before the handshake is answered, so a
    client that has seen its 101 cannot miss a message published after it.
    Problems found before the upgrade (bad name, refused, broker down, a
    malformed handshake) are answered like any HTTP error: a status and a
    JSON body.

    Plain clients get each payload as it was published.  With ``?positions=1``
    they get JSON envelopes with positions, and with ``?since=<position>``
    they first get what they missed since then (see subscribers.py).
    """

    SUPPORTED_METHODS = ("GET",)

    def initialize(
        self,
        node: Node,
        hooks: ChannelHooks,
        config: ChannelConfig,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        """Take the shared node, hooks, config and heartbeat from the route table."""
        super().initialize(node, hooks, config)
        self.heartbeat = heartbeat
        self.connection: WebSocketConnection | None = None
        # Frames sent before the connection opened, and a close asked for then.
        self._pending: list[bytes] | None = []
        self._close_on_open: tuple[int | None, str | None] | None = None
        self._budget = TokenBucket(config.client_rate, config.client_burst, time.monotonic())
        # Client messages waiting to be published, one at a time, in order.
        self._inbox: list[bytes] = []
        self._publisher: asyncio.Task[None] | None = None
        self._paused = False
        # A protocol error waiting for the messages before it to be published.
        self._fail_after: tuple[int, str] | None = None

    async def get(self, path: str) -> None:
        """Check the handshake, admit and subscribe, answer 101 and hand the socket over."""
        key = self._handshake_key()
        since = self.get_query_argument("since", None)
        if since is not None or self.get_query_argument("positions", None) is not None:
            self.encoding = "envelope"
        channel = await self.admit(path, since)
        try:
            await self.node.subscribe(channel, self)
        except BrokerUnavailable as exc:
            raise broker_unavailable(exc) from None
        try:
            await self._take_over(key)
        except BaseException:
            self.node.unsubscribe(channel, self)
            raise
        try:
            await self.resume()
        except Exception:
            # The HTTP side is finished: nothing would answer an error but the close.
            log.exception("resuming a subscriber failed")
            self.close(CLOSE_INTERNAL_ERROR, "internal error")

    def _handshake_key(self) -> str:
        """The client's Sec-WebSocket-Key, once the handshake is found well formed."""
        headers = self.request.headers
        if headers.get("Upgrade", "").lower() != "websocket":
            raise ApiError(400, "invalid_handshake", 'can "Upgrade" only to "websocket"')
        tokens = [token.strip().lower() for token in headers.get("Connection", "").split(",")]
        if "upgrade" not in tokens:
            raise ApiError(400, "invalid_handshake", '"Connection" must include "Upgrade"')
        if headers.get("Sec-WebSocket-Version") != "13":
            raise ApiError(
                426,
                "unsupported_version",
                "only WebSocket version 13 is supported",
                {"Sec-WebSocket-Version": "13"},
            )
        key = headers.get("Sec-WebSocket-Key", "").strip()
        if not key or not headers.get("Host"):
            raise ApiError(400, "invalid_handshake", "missing Sec-WebSocket-Key or Host")
        return key

    async def _take_over(self, key: str) -> None:
        """Answer 101 and move the socket to a WebSocketConnection on the loop's transport."""
        accept = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest())
        handshake = (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        detached: object = self.detach()
        switch = getattr(detached, "switch_protocol", None)
        if switch is not None:
            # The standalone server's wire: it hands over its transport, with
            # what the client sent after its request.
            switch(lambda rest: self._connect(handshake, rest))
            self._release_request()
            return
        assert isinstance(detached, IOStream)
        stream = detached
        # What the client sent after its request (frames, already read by
        # the stream): a private attribute, as IOStream offers no way to
        # take its buffer.
        leftover = bytes(stream._read_buffer[: stream._read_buffer_size])
        connection = self._connect(handshake, leftover)
        if type(stream) is IOStream and stream.socket is not None:
            # A duplicate of the socket goes to the loop's transport; closing
            # the stream then releases only its own descriptor.
            sock = stream.socket.dup()
            stream.close()
            try:
                await asyncio.get_running_loop().connect_accepted_socket(
                    lambda: connection, sock=sock
                )
            except BaseException:
                sock.close()
                raise
        else:
            StreamTransport(stream, connection)  # TLS: the session stays in its SSLSocket.
        self._release_request()

    def _connect(self, handshake: bytes, leftover: bytes) -> WebSocketConnection:
        self.connection = WebSocketConnection(
            self, handshake, leftover, self.config.max_message_size, self.heartbeat
        )
        return self.connection

    def _release_request(self) -> None:
        # The HTTP side is done with: let its objects go (hooks keep the request).
        self._break_cycles()
        self.request.connection = None
        self.request.server_connection = None

    # From the connection (see connection.ConnectionOwner)

    def opened(self) -> None:
        """The 101 is written: send what was published meanwhile, or the close asked for."""
        pending, self._pending = self._pending or [], None
        connection = self.connection
        assert connection is not None
        for frame in pending:
            connection.send(frame)
        if self._close_on_open is not None:
            connection.close(*self._close_on_open)

    def frames_received(self, count: int) -> None:
        """Spend ``count`` frames of the client's budget; past its rate and burst, close 1008.

        Data, continuation and control frames alike: a flood of tiny
        fragments or of pings costs the client as much as one of messages.
        """
        now = time.monotonic()
        for _ in range(count):
            if not self._budget.take(now):
                self.close(CLOSE_POLICY_VIOLATION, "rate limit exceeded")
                return

    def message_received(self, payload: bytes) -> None:
        """Queue the client's message for publishing (in order, one at a time)."""
        self._inbox.append(payload)
        if len(self._inbox) >= _INBOX_LIMIT:
            self._reading(False)
        if self._publisher is None:
            self._publisher = asyncio.ensure_future(self._publish_inbox())
            self._publisher.add_done_callback(self._published)

    def protocol_error(self, code: int, reason: str) -> None:
        """Fail the connection, once the messages that came before the bad frame are published.

        So a client whose valid message is followed by a bad frame still
        gets its own message back (when the node delivers it at once, as
        the embedded broker does) before the close.
        """
        if self._publisher is None:
            self._fail(code, reason)
        else:
            self._fail_after = (code, reason)

    def _fail(self, code: int, reason: str) -> None:
        # Deliver what was published so far (the echo) before the close frame.
        self.node.flush()
        if self.connection is not None:
            self.connection.fail(code, reason)

    def closed(self) -> None:
        """The connection is gone: leave the channel."""
        self._inbox.clear()
        self.node.unsubscribe(self.channel, self)
        self.connection = None  # No cycle left for the collector to find.

    async def _publish_inbox(self) -> None:
        while self._inbox:
            await self._publish(self._inbox.pop(0))
            if len(self._inbox) < _INBOX_LIMIT // 2:
                self._reading(True)

    def _reading(self, on: bool) -> None:
        """Pause reading while too many client messages wait to be published; resume after."""
        connection = self.connection
        if on == self._paused and connection is not None and connection.transport is not None:
            self._paused = not on
            transport = cast(asyncio.ReadTransport, connection.transport)
            if on:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def _published(self, task: asyncio.Task[None]) -> None:
        self._publisher = None
        if not task.cancelled() and task.exception() is not None:
            log.error("publishing a client's message failed", exc_info=task.exception())
            self.close(CLOSE_INTERNAL_ERROR, "internal error")
        if self._fail_after is not None:
            self._fail(*self._fail_after)

    async def _publish(self, raw: bytes) -> None:
        """Publish one client message to its channel, through the message hook."""
        connection = self.connection
        if connection is None or connection.close_sent or connection.transport is None:
            return  # Already closing (e.g. over its rate): publish nothing more.
        if not self.config.client_may_publish(self.channel.name):
            self.close(CLOSE_POLICY_VIOLATION, "publishing here is disabled for WebSocket clients")
            return
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

    def write_frame(self, frame: bytes) -> None:
        """Write a frame now (or, before the 101 is written, right after it)."""
        if self._pending is not None:
            self._pending.append(frame)
        elif self.connection is not None:
            self.connection.send(frame)

    def buffered_bytes(self) -> int:
        """Bytes written to this client that it has not yet taken."""
        connection = self.connection
        if connection is None or connection.transport is None or connection.close_sent:
            # Closing: nothing more is written to it, so nothing counts as unread.
            return 0
        return connection.buffered()

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close with a WebSocket close code (right after the 101, if it is not written yet).

        It leaves the channel at once: nothing more is written to it, even
        while its close frame waits to reach a peer that stopped reading.
        """
        if self._pending is not None:
            self._close_on_open = (code, reason)
        elif self.connection is not None:
            self.connection.close(code, reason)
            self.node.unsubscribe(self.channel, self)
