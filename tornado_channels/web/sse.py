"""The server-sent-events edge: a channel as a ``text/event-stream``.

For clients that cannot (or may not) use WebSockets: ``EventSource`` in every
browser, ``curl -N``, proxies that only pass plain HTTP.  Each message is an
event whose ``id`` is its position, so ``EventSource`` resumes by itself
(``Last-Event-ID``) after a dropped connection; ``?lastEventId=`` does the
same for the first connection.  The handler admits and subscribes like the
WebSocket edge; the stream is the subscription's transport.
"""

from __future__ import annotations

import asyncio

import tornado.web
from tornado.ioloop import PeriodicCallback

from ..core.frames import SSE_HEARTBEAT, Encoding, sse_control
from .context import MountContext
from .errors import JSONErrorsMixin
from .server_connection import connection_of
from .subscribing import admit, start


class EventStream:
    """A handler's response as a subscription's transport: events written and flushed."""

    def __init__(self, handler: tornado.web.RequestHandler) -> None:
        self.handler = handler
        #: Set when the stream is to end (closed by the server, or the client left).
        self.done = asyncio.Event()

    def send(self, frame: bytes) -> None:
        """Write an event and flush it."""
        handler = self.handler
        if self.done.is_set() or handler.request.connection is None:
            return
        handler.write(frame)
        # flush's Future resolves when written; a failed write closes the
        # connection, which the handler's on_connection_close handles.
        handler.flush().add_done_callback(_retrieve)

    def buffered(self) -> int:
        """Bytes written to this client that the kernel has not yet accepted."""
        request = self.handler.request
        return connection_of(request).buffered_bytes() if request.connection is not None else 0

    def close(self, code: int | None, reason: str | None) -> None:
        """Say why the stream ends (the WebSocket close code and reason), then end it."""
        self.send(sse_control("close", code=code, reason=reason))
        self.done.set()

    def fail(self, code: int, reason: str) -> None:
        """Event streams have no protocol of their own to fail: end the stream."""
        self.close(code, reason)


class ChannelEventsHandler(JSONErrorsMixin):
    """``GET /<channel>`` with ``Accept: text/event-stream``: the channel as server-sent events."""

    SUPPORTED_METHODS = ("GET",)

    def initialize(self, mount: MountContext) -> None:
        """Take what the mount point's routes share (see context.py)."""
        self.mount = mount
        self.stream = EventStream(self)

    async def get(self, path: str) -> None:
        """Admit and subscribe; stream events until the client or the server ends it."""
        since = self.request.headers.get("Last-Event-ID") or self.get_query_argument(
            "lastEventId", None
        )
        admission = await admit(
            self.request,
            path,
            since=since,
            encoding=Encoding.SSE,
            mount=self.mount,
            trusted=self.settings.get("trusted_origins", ()),
        )
        subscription = await start(admission, self.mount.config.token_leeway)
        stream = self.stream
        heartbeat = PeriodicCallback(
            lambda: stream.send(SSE_HEARTBEAT), self.mount.config.sse_heartbeat * 1000
        )
        try:
            self.set_header("Content-Type", "text/event-stream; charset=utf-8")
            self.set_header("Cache-Control", "no-cache, no-store")
            # nginx would otherwise buffer the stream and deliver nothing.
            self.set_header("X-Accel-Buffering", "no")
            # Reconnect soon after a drop; EventSource's default is slower.
            stream.send(b"retry: 1000\n\n")
            subscription.attach(stream)
            await subscription.resume()
            heartbeat.start()
            await stream.done.wait()
        finally:
            heartbeat.stop()
            subscription.end()
        self.finish()

    def on_connection_close(self) -> None:
        """The client went away: end the stream."""
        self.stream.done.set()
        super().on_connection_close()


def _retrieve(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
