"""The server-sent-events edge: a channel as an ``text/event-stream``.

For clients that cannot (or may not) use WebSockets: ``EventSource`` in every
browser, ``curl -N``, proxies that only pass plain HTTP.  Each message is an
event whose ``id`` is its position, so ``EventSource`` resumes by itself
(``Last-Event-ID``) after a dropped connection; ``?lastEventId=`` does the
same for the first connection.
"""

from __future__ import annotations

import asyncio

from tornado.ioloop import PeriodicCallback

from ..brokers.base import BrokerUnavailable
from ..core.frames import SSE_HEARTBEAT, sse_control
from ..node import Node
from ..web.config import ChannelConfig
from ..web.connection import queued_bytes
from ..web.hooks import ChannelHooks
from ..web.pages import broker_unavailable
from ..web.subscribing import SubscriberMixin


class ChannelEventsHandler(SubscriberMixin):
    """``GET /<channel>`` with ``Accept: text/event-stream``: the channel as server-sent events."""

    encoding = "sse"

    def initialize(self, node: Node, hooks: ChannelHooks, config: ChannelConfig) -> None:
        """Take the shared node, hooks and config from the route table."""
        super().initialize(node, hooks, config)
        self._done = asyncio.Event()
        self._live = False

    async def get(self, path: str) -> None:
        """Admit and subscribe; stream events until the client or the server ends it."""
        since = self.request.headers.get("Last-Event-ID") or self.get_query_argument(
            "lastEventId", None
        )
        channel = await self.admit(path, since)
        try:
            await self.node.subscribe(channel, self)
        except BrokerUnavailable as exc:
            raise broker_unavailable(exc) from None
        heartbeat = PeriodicCallback(self._heartbeat, self.config.sse_heartbeat * 1000)
        try:
            self.set_header("Content-Type", "text/event-stream; charset=utf-8")
            self.set_header("Cache-Control", "no-cache, no-store")
            # nginx would otherwise buffer the stream and deliver nothing.
            self.set_header("X-Accel-Buffering", "no")
            self._live = True
            # Reconnect soon after a drop; EventSource's default is slower.
            self.write_frame(b"retry: 1000\n\n")
            await self.resume()
            heartbeat.start()
            await self._done.wait()
        finally:
            heartbeat.stop()
            self._live = False
            self.node.unsubscribe(channel, self)
        if not self._finished:
            self.finish()

    def _heartbeat(self) -> None:
        # A comment line, below proxies' read timeouts: keeps the stream open.
        self.write_frame(SSE_HEARTBEAT)

    def on_connection_close(self) -> None:
        """The client went away: end the stream."""
        self._done.set()
        super().on_connection_close()

    # Subscriber protocol (see hub.Subscriber)

    def write_frame(self, frame: bytes) -> None:
        """Write an event to the response and flush it."""
        if not self._live or self._finished or self.request.connection is None:
            return
        self.write(frame)
        # flush's Future resolves when written; a failed write closes the
        # connection, which on_connection_close handles.
        self.flush().add_done_callback(_retrieve)

    def buffered_bytes(self) -> int:
        """Bytes written to this client that the kernel has not yet accepted."""
        connection = self.request.connection
        # The standalone server's wire says; Tornado's own server keeps them in its IOStream.
        buffered = getattr(connection, "buffered_bytes", None)
        if buffered is not None:
            return int(buffered())
        return queued_bytes(getattr(connection, "stream", None))

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Say why the stream ends (the WebSocket close code and reason), then end it."""
        self.write_frame(sse_control("close", code=code, reason=reason))
        self._done.set()


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
