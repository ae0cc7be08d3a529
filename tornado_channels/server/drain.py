"""The write side of a connection's flow control: writers wait while the transport is full.

asyncio tells a protocol when its transport's buffer passes the high-water
mark (``pause_writing``) and when it drains (``resume_writing``).  A
:class:`Drain` turns that into what a writer awaits: the future of a write
resolves at once while the transport has room, and only once it drains
otherwise, as Tornado's ``IOStream.write`` does; a connection that is lost
fails every writer still waiting.
"""

from __future__ import annotations

import asyncio

from tornado.iostream import StreamClosedError


class Drain:
    """The writes of one connection waiting for its transport to drain."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        #: Whether the transport is above its high-water mark.
        self.paused = False
        self._waiting: list[asyncio.Future[None]] = []

    def write(self, transport: asyncio.Transport | None, data: bytes) -> asyncio.Future[None]:
        """Write ``data``; the future resolves once the transport can take more."""
        future: asyncio.Future[None] = self._loop.create_future()
        if transport is None or transport.is_closing():
            future.set_exception(StreamClosedError())
            future.exception()  # Retrieved: the writer may not await it.
            return future
        if data:
            transport.write(data)
        if self.paused:
            self._waiting.append(future)
        else:
            future.set_result(None)
        return future

    def pause(self) -> None:
        """The transport is full: writes wait from now on."""
        self.paused = True

    def resume(self) -> None:
        """The transport drained: release every waiting writer."""
        self.paused = False
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(None)

    def lost(self) -> None:
        """The connection is gone: every waiting writer fails."""
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if not waiter.done():
                waiter.set_exception(StreamClosedError())
                waiter.exception()  # Retrieved: nobody may be waiting for it.
