"""An upgraded WebSocket's socket, served by a small asyncio protocol instead of Tornado's stack.

Once the handshake is answered, Tornado's WebSocket machinery keeps, per idle
connection, an IOStream with its queues, a protocol object, and a chain of
coroutines waiting for the next frame: about 15 KiB each (tracemalloc, see
docs/performance.md).  Here the socket goes to the event loop's own
transport (uvloop's, written in C, when it runs) with this protocol on top:
frames the clients send are parsed by :mod:`.inbound`, frames for them are
written as they are (already encoded once for every subscriber), and one
:class:`Heartbeat` per mount point pings every connection from a single timer.

The owner (a :class:`~.chat.Chat`) is told when the connection opens, what
arrives, and when it is gone; the subscription the hub holds writes to the
connection (it is that subscription's transport).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import deque
from typing import Protocol, cast

from tornado.ioloop import PeriodicCallback
from tornado.iostream import IOStream, StreamClosedError

from ..core.deflate import Inflater
from ..core.frames import CLOSE_SLOW_CONSUMER, OPCODE_CLOSE, close_frame, encode_frame
from ..core.inbound import NO_STATUS, OPCODE_PING, OPCODE_PONG, FrameReader
from . import _tornado

log = logging.getLogger("tornado_channels.connection")

#: Seconds a closing connection waits for the peer's close frame, once its
#: own has left, before dropping it.
CLOSE_WAIT = 5.0
#: Seconds a close frame may wait behind unread data for a peer that stopped
#: reading (a slow consumer): one that reads again within it still learns why.
CLOSE_SEND_WAIT = 30.0
#: Bytes the transport holds for a connection before frames wait in its own
#: queue instead: whole frames there can still be dropped (a slow consumer's),
#: so its close frame goes out next instead of behind megabytes.
TRANSPORT_HIGH_WATER = 64 << 10
_PING = b"\x89\x00"


class ConnectionOwner(Protocol):
    """What a :class:`WebSocketConnection` reports to (the client's :class:`~.chat.Chat`)."""

    def opened(self) -> None:
        """The 101 is on its way: frames may be written from now on."""

    def frames_received(self, count: int) -> None:
        """``count`` frames arrived (messages, fragments, control frames alike)."""

    def message_received(self, payload: bytes) -> None:
        """A whole message (text or binary) arrived."""

    def protocol_error(self, code: int, reason: str) -> None:
        """The client broke the protocol: the connection must be failed with ``code``."""

    def closed(self) -> None:
        """The connection is gone."""


class WebSocketConnection(asyncio.Protocol):
    """The server side of one WebSocket after its handshake.

    ``handshake`` (the 101 response) is written first, then ``leftover``
    (bytes the client sent right after its request) is read as frames.
    ``inflater`` reads its compressed messages, when it agreed to
    permessage-deflate; what is sent to it comes compressed already.
    """

    __slots__ = (
        "_close_timer",
        "_handshake",
        "_leftover",
        "_paused",
        "_queue",
        "_queued",
        "close_received",
        "close_sent",
        "fd",
        "heartbeat",
        "last_ping",
        "owner",
        "pinged",
        "reader",
        "transport",
    )

    def __init__(
        self,
        owner: ConnectionOwner,
        handshake: bytes,
        leftover: bytes,
        max_message_size: int,
        heartbeat: Heartbeat | None,
        inflater: Inflater | None = None,
    ) -> None:
        self.owner = owner
        self._handshake = handshake
        self._leftover = leftover
        self.reader = FrameReader(max_message_size, inflater)
        self.heartbeat = heartbeat
        self.transport: asyncio.WriteTransport | None = None
        self.fd = -1
        self.close_sent = False
        self.close_received = False
        self._close_timer: asyncio.TimerHandle | None = None
        # Frames waiting while the transport is over its high-water mark.
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._paused = False
        #: When the last ping was sent, and whether it is still unanswered.
        self.last_ping = time.monotonic()
        self.pinged = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Answer the handshake, then read what the client sent after it."""
        # uvloop's transports are not asyncio.WriteTransport subclasses, only alike.
        self.transport = cast(asyncio.WriteTransport, transport)
        transport = self.transport
        # The socket's descriptor, for direct writes (see send()); none over TLS.
        if not isinstance(transport, StreamTransport):
            self.fd = transport.get_extra_info("socket").fileno()
            transport.set_write_buffer_limits(TRANSPORT_HIGH_WATER)
        transport.write(self._handshake)
        self._handshake = b""
        if self.heartbeat is not None:
            self.heartbeat.add(self)
        self.owner.opened()
        leftover, self._leftover = self._leftover, b""
        if leftover and not self.close_received:
            self.data_received(leftover)

    def data_received(self, data: bytes) -> None:
        """Parse frames; answer pings and close frames; hand messages to the owner."""
        if self.close_received:
            return
        self.pinged = False  # Anything from the peer shows it is alive.
        inbound, frames, error = self.reader.feed(data)
        if frames:
            self.owner.frames_received(frames)
        for item in inbound:
            if self.transport is None or self.transport.is_closing():
                return
            if item.opcode == OPCODE_PING:
                self.send(encode_frame(item.payload, OPCODE_PONG))
            elif item.opcode == OPCODE_PONG:
                pass
            elif item.opcode == OPCODE_CLOSE:
                self._peer_closed(item.code)
                return
            elif not self.close_sent:
                self.owner.message_received(item.payload)
        if error is not None:
            self.close_received = True  # Nothing more is read.
            self.owner.protocol_error(error.code, error.reason)

    def pause_writing(self) -> None:
        """The transport holds enough: queue frames here until it drains."""
        self._paused = True

    def resume_writing(self) -> None:
        """The transport drained: give it the queued frames, until it is full again."""
        self._paused = False
        transport = self.transport
        queue = self._queue
        while queue and not self._paused and transport is not None:
            frame = queue.popleft()
            self._queued -= len(frame)
            transport.write(frame)  # May call pause_writing() at once.

    def buffered(self) -> int:
        """Bytes written to this connection that the peer has not yet taken (queued or sent)."""
        transport = self.transport
        held = transport.get_write_buffer_size() if transport is not None else 0
        return held + self._queued

    def connection_lost(self, exc: Exception | None) -> None:
        """Gone: stop pinging, tell the owner."""
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self.heartbeat is not None:
            self.heartbeat.discard(self)
        self.transport = None
        self.owner.closed()

    # Writing

    def send(self, frame: bytes) -> None:
        """Write an encoded frame, unless a close frame has been sent.

        With nothing queued in the transport, the frame goes straight to the
        socket: called once per subscriber per message, ``transport.write``
        costs 0.3-1.5 us more per call than ``os.write`` (uvloop queues the
        write to the end of the loop's pass; asyncio runs its checks in
        Python).  What the socket does not take goes to the transport, which
        keeps the order from then on.
        """
        transport = self.transport
        if transport is None or self.close_sent:
            return
        if self._paused or self._queue:
            self._queue.append(frame)
            self._queued += len(frame)
            return
        if self.fd >= 0 and not transport.get_write_buffer_size() and not transport.is_closing():
            # The descriptor is this connection's until its transport begins
            # to close (is_closing), so it cannot be another's by now.
            try:
                sent = os.write(self.fd, frame)
            except OSError:
                # Full (EAGAIN), or reset: the transport queues it, or fails
                # the same way and closes through its usual path.
                sent = 0
            if sent == len(frame):
                return
            frame = frame[sent:]
        transport.write(frame)

    def ping(self, now: float) -> None:
        """Send a ping; the peer has until the heartbeat's timeout to show it is alive."""
        self.send(_PING)
        self.last_ping = now
        self.pinged = True

    # Closing

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Send a close frame; the connection ends when the peer answers (or after a wait).

        A slow consumer's queued frames are dropped first (those the
        transport holds are whole frames already on their way), so its 4008
        arrives right behind what is in flight, not after megabytes it would
        never read.  Other closes send what is queued, then the close frame.
        """
        transport = self.transport
        if transport is None or self.close_sent:
            return
        self.close_sent = True
        queue, self._queue, self._queued = self._queue, deque(), 0
        if code != CLOSE_SLOW_CONSUMER:
            for frame in queue:
                transport.write(frame)
        transport.write(close_frame(code, reason))
        if self.close_received:
            self._linger(transport)
        else:
            loop = asyncio.get_running_loop()
            self._await_close_reply(transport, loop.time() + CLOSE_SEND_WAIT)

    def _await_close_reply(self, transport: asyncio.WriteTransport, deadline: float) -> None:
        """Give the peer CLOSE_WAIT seconds to answer, counted from when our close frame left."""
        loop = asyncio.get_running_loop()
        if self.transport is not transport:
            return
        if not transport.get_write_buffer_size():
            self._close_timer = loop.call_later(CLOSE_WAIT, transport.abort)
        elif loop.time() >= deadline:
            transport.abort()
        else:
            self._close_timer = loop.call_later(0.25, self._await_close_reply, transport, deadline)

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): a close frame, then the TCP connection closes."""
        self.close_received = True  # Nothing more is read.
        self.close(code, reason)

    def _linger(self, transport: asyncio.WriteTransport) -> None:
        """Close gracefully once our close frame is written: FIN, then read and drop.

        Closing a socket with the peer's bytes still unread makes the kernel
        send a reset, which can destroy the close frame (and the echo before
        it) before the peer, or nginx relaying for it, has read them.  So
        the peer gets a FIN behind our last frame and CLOSE_WAIT seconds to
        close its side (what it still sends is read and dropped, see
        data_received); then the connection is dropped.
        """
        if isinstance(transport, StreamTransport) or not transport.can_write_eof():
            transport.close()  # Tornado's stream (TLS) closes after what is queued.
            return
        # Reading may be paused (a full inbox): the unread bytes would stay unread.
        cast(asyncio.ReadTransport, transport).resume_reading()
        transport.write_eof()
        if self._close_timer is not None:
            self._close_timer.cancel()
        self._close_timer = asyncio.get_running_loop().call_later(CLOSE_WAIT, transport.abort)

    def abort(self) -> None:
        """Drop the connection at once (a dead peer)."""
        if self.transport is not None:
            self.transport.abort()

    def _peer_closed(self, code: int) -> None:
        self.close_received = True
        if not self.close_sent:
            # Echo the peer's code, as RFC 6455 5.5.1 suggests; none if it sent none.
            self.close(None if code == NO_STATUS else code)
        elif self.transport is not None:
            self.transport.close()


class Heartbeat:
    """Pings every connection of a mount point from one timer, and drops the silent ones.

    A connection is pinged every ``interval`` seconds; one that sends
    nothing at all for ``timeout`` seconds after a ping is dropped.
    """

    def __init__(self, interval: float, timeout: float) -> None:
        self.interval = interval
        self.timeout = timeout
        self._connections: set[WebSocketConnection] = set()
        self._timer: PeriodicCallback | None = None

    def add(self, connection: WebSocketConnection) -> None:
        """Start pinging ``connection``."""
        self._connections.add(connection)
        if self._timer is None:
            tick = min(self.interval, self.timeout) * 1000 / 2
            self._timer = PeriodicCallback(self._tick, tick)
            self._timer.start()

    def discard(self, connection: WebSocketConnection) -> None:
        """Stop pinging ``connection``; the timer stops with the last one."""
        self._connections.discard(connection)
        if not self._connections and self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _tick(self) -> None:
        now = time.monotonic()
        for connection in list(self._connections):
            if connection.pinged:
                if now - connection.last_ping >= self.timeout:
                    connection.abort()
            elif now - connection.last_ping >= self.interval:
                connection.ping(now)


class StreamTransport(asyncio.Transport):
    """A transport over a Tornado IOStream, for the streams the event loop cannot adopt (TLS).

    A TLS session lives in its SSLSocket, so an SSLIOStream cannot be handed
    to the loop's own transport; this reads and writes through the stream
    instead, with the same interface the protocol uses.
    """

    def __init__(self, stream: IOStream, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.stream = stream
        self.protocol = protocol
        self._closing = False
        self._readable = asyncio.Event()
        self._readable.set()
        self._reading = asyncio.ensure_future(self._read())

    def pause_reading(self) -> None:
        """Read nothing more until resume_reading()."""
        self._readable.clear()

    def resume_reading(self) -> None:
        """Read again."""
        self._readable.set()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Queue ``data`` on the stream (a bytearray copied: the writer may reuse it)."""
        if not self.stream.closed():
            self.stream.write(bytes(data) if isinstance(data, bytearray) else data)

    def get_write_buffer_size(self) -> int:
        """Bytes queued on the stream."""
        return _tornado.queued_bytes(self.stream)

    def is_closing(self) -> bool:
        """Whether close() or abort() was called, or the stream closed."""
        return self._closing or self.stream.closed()

    def close(self) -> None:
        """Close once what is queued is written."""
        self._closing = True
        if self.stream.closed():
            return
        if not self.stream.writing():
            self.stream.close()
            return
        # The last write's Future resolves when everything queued is sent.
        self.stream.write(b"").add_done_callback(lambda _: self.stream.close())

    def abort(self) -> None:
        """Close now, dropping what is queued."""
        self._closing = True
        self.stream.close()

    async def _read(self) -> None:
        self.protocol.connection_made(self)
        try:
            while True:
                await self._readable.wait()
                data = await self.stream.read_bytes(65536, partial=True)
                self.protocol.data_received(data)
        except StreamClosedError:
            pass
        finally:
            self.protocol.connection_lost(None)
