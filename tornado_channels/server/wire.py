"""The standalone server's HTTP/1.1 wire: requests read by llhttp, served by Tornado.

Each connection is an :class:`HTTPWire`, a small asyncio protocol on the
event loop's own transport.  It reads requests with
:class:`~.http1.RequestReader` (``httptools``, the parser uvicorn and Node
use) and hands each one to the Tornado application through Tornado's public
server interface (:class:`~tornado.httputil.HTTPServerConnectionDelegate`,
with an :class:`Exchange` as the request's connection: Tornado's
:class:`~tornado.httputil.HTTPConnection` and the web layer's
:class:`~..web.server_connection.ServerConnection`), so routing and handlers
are Tornado's own; a POST is first offered to the application's publishing
shortcut, which serves publishes from the head alone (web/publishing.py) and
declines everything else.  What it does itself:

- every refusal it makes is answered, in JSON like every other error:
  malformed requests (400, 501, 505), heads too large (431, 414), bodies
  past the server's cap (413, from the head), requests that stall (408);
- an answer given before the request's body was read still reaches the
  client: the rest of the body is read and dropped, and the connection lives
  on when that rest is small, or is closed gracefully after it (``Connection:
  close``, then a lingering close bounded in bytes and time), never reset
  while the client is still sending;
- keep-alive and pipelining (answers in order, one request at a time),
  ``Expect: 100-continue``, chunked bodies and answers, HEAD;
- flow control: while the transport holds more than its high-water mark of
  answers the client has not read, nothing more is read or started, so a
  client that pipelines without reading costs a bounded buffer;
- the header and body timeouts;
- handing the socket over to another protocol (the WebSocket edge) with the
  bytes that came after the handshake.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from tornado import httputil

from ..core.http1 import END, BadRequest, RequestHead, RequestReader
from ..web.server_connection import ProtocolFactory, tornado_head
from .deadline import Deadline
from .drain import Drain
from .exchange import Exchange, WireContext, apply_xheaders, call_quietly, error_response

log = logging.getLogger("tornado_channels.server")

#: After an answer that closes the connection: how long, and how many body
#: bytes, it is still read (and dropped) so the answer is never lost to a reset.
LINGER_TIME = 5.0
LINGER_BYTES = 64 << 20
#: Request bytes buffered while an answer is pending (pipelining) past which
#: reading pauses.
MAX_BUFFERED = 1 << 20


#: Serves a request straight from its head (see WireServer), or declines with None.
Shortcut = Callable[["Exchange", RequestHead], "httputil.HTTPMessageDelegate | None"]


class HTTPWire(asyncio.Protocol):
    """One client connection of the standalone server."""

    def __init__(self, server: WireServer) -> None:
        self.server = server
        # Kept: get_running_loop() asks the OS for the pid on every call.
        self._loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.reader = RequestReader()
        self.exchange: Exchange | None = None
        self.peer = "0.0.0.0"
        #: Set on shutdown: the connection ends after the answer in progress.
        self.closing = False
        self._advancing = False
        #: The idle, body or linger deadline: one at a time.
        self.deadline = Deadline(self._loop)
        self._paused_reading = False
        #: Writers waiting for the transport to drain (the write side of flow control).
        self.drain = Drain(self._loop)
        self._lingering = 0
        self._eof = False
        self._gone = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start waiting for the first request (within the idle timeout)."""
        # A stream connection's transport is a Transport (the signature is the base's).
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.peer = str(peer[0])
        self.server.connections.add(self)
        self.deadline.set(self.server.idle_timeout, self._idle_timeout)

    def data_received(self, data: bytes) -> None:
        """Read what the bytes complete."""
        if self._lingering:
            self._linger_read(len(data))
            return
        self.reader.feed(data)
        self._advance()

    def eof_received(self) -> bool:
        """The client sent all it will: answer what it asked, then close."""
        self._eof = True
        exchange = self.exchange
        if exchange is None or self._lingering or exchange.reading:
            # Idle, done, or gone in the middle of a body that will never end.
            self.close()
            return False
        return True  # Keep the write side open for the answer in progress.

    def connection_lost(self, exc: Exception | None) -> None:
        """Gone: stop the timers, tell the request in progress."""
        self._gone = True
        self.deadline.cancel()
        self.server.connections.discard(self)
        self.transport = None
        exchange, self.exchange = self.exchange, None
        if exchange is not None and not exchange.detached:
            exchange.connection_lost()
        self.drain.lost()

    def pause_writing(self) -> None:
        """The transport's buffer is above its high-water mark: stop reading, writers wait.

        Flow control as uvicorn's: a client that sends requests but does not
        read the answers would otherwise have them buffered without limit
        (pipelined refusals cost nothing to send).  Reading, and starting the
        next request, wait until the client has taken what was written.
        """
        self.drain.pause()
        self._flow()

    def resume_writing(self) -> None:
        """The transport's buffer drained: release the writers, read on."""
        self.drain.resume()
        if self.transport is not None and not self._lingering:
            self._advance()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The connection's event loop (asked once, not per request)."""
        return self._loop

    # Writing

    def write(self, data: bytes) -> asyncio.Future[None]:
        """Write ``data``; the future resolves once the transport can take more."""
        return self.drain.write(self.transport, data)

    # Reading requests

    def _advance(self) -> None:
        """Hand out what the reader has, as far as the request being served allows."""
        if self._advancing:
            return  # Called back from inside the loop below: it carries on.
        self._advancing = True
        try:
            while self.transport is not None and not self._lingering:
                exchange = self.exchange
                if exchange is None:
                    if self.drain.paused:
                        break  # The next request waits until the answers drain.
                    head = self.reader.next()
                    if head is None:
                        break
                    assert isinstance(head, RequestHead)
                    self._start(head)
                elif exchange.reading and not exchange.waiting:
                    event = self.reader.next()
                    if event is None:
                        break
                    if event is END:
                        self._body_done(exchange)
                    else:
                        assert isinstance(event, bytes)
                        self._body(exchange, event)
                else:
                    break  # Pipelined bytes wait for the answer in progress.
        except BadRequest as exc:
            self._refuse(exc.status, exc.error, exc.message)
        finally:
            self._advancing = False
        self._flow()

    def _flow(self) -> None:
        """Pause reading while too much waits unread behind a pending answer; resume after."""
        transport = self.transport
        if transport is None or (self.exchange is not None and self.exchange.detached):
            return
        full = self.drain.paused or self.reader.buffered > MAX_BUFFERED
        if full != self._paused_reading:
            self._paused_reading = full
            if full:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _start(self, head: RequestHead) -> None:
        """A request's head arrived: hand it to the application."""
        context = WireContext(self.peer, "http")
        if self.server.xheaders:
            apply_xheaders(context, head)
        exchange = self.exchange = Exchange(self, head, context)
        limit = self.server.max_body_size
        if head.length is not None and head.length > limit:
            # Refused from the head, as Tornado's server does, before any body.
            self._refuse(
                413, "request_too_large", f"the body exceeds the server's limit of {limit} bytes"
            )
            return
        if head.has_body:
            self.deadline.set(self.server.body_timeout, self._body_timeout)
        else:
            self.deadline.disarm()
        shortcut = self.server.shortcut
        if shortcut is not None and head.method == "POST":
            try:
                delegate = shortcut(exchange, head)
            except Exception:
                log.exception("serving a request failed")
                self._fail(exchange)
                return
            if delegate is not None:
                exchange.delegate = delegate
                exchange.maybe_continue()
                return
        start_line, headers = tornado_head(head, _origin_form(head.target))
        delegate = exchange.delegate = self.server.delegate.start_request(self, exchange)
        if self._call(exchange, delegate.headers_received, start_line, headers):
            exchange.maybe_continue()

    def _call(self, exchange: Exchange, callback: Callable[..., Any], *args: Any) -> bool:
        """Hand the application what the request brought; False if reading must wait or stop.

        A delegate that fails is a bug: answered 500 (if nothing was
        answered) and the connection closed.  One that returns a future (a
        streaming handler's ``prepare`` or ``data_received``) is waited for
        before more of the body is handed over.
        """
        try:
            pending = callback(*args)
        except httputil.HTTPInputError as exc:
            # Tornado's own refusal of what the client sent (a query string
            # with too many fields, say): the client's fault, answered 400.
            self._refuse(400, "bad_request", str(exc))
            return False
        except Exception:
            log.exception("serving a request failed")
            self._fail(exchange)
            return False
        if pending is not None:
            self._wait_for(exchange, pending)
            return False
        return not exchange.detached

    def _wait_for(self, exchange: Exchange, pending: Awaitable[None]) -> None:
        exchange.waiting = True  # Nothing more is handed over until it is done.

        async def wait() -> None:
            try:
                await pending
            finally:
                exchange.waiting = False
            if self.exchange is exchange and not exchange.detached:
                exchange.maybe_continue()
                self._advance()

        task = asyncio.ensure_future(wait())
        self.server.tasks.add(task)
        task.add_done_callback(self.server.tasks.discard)

    def _body(self, exchange: Exchange, data: bytes) -> None:
        exchange.received += len(data)
        if exchange.finished:
            return  # Answered already: the rest is read and dropped.
        if exchange.received > self.server.max_body_size:
            if exchange.delegate is not None:
                call_quietly(exchange.delegate.on_connection_close)
            raise BadRequest(
                413,
                "request_too_large",
                f"the body exceeds the server's limit of {self.server.max_body_size} bytes",
            )
        assert exchange.delegate is not None
        self._call(exchange, exchange.delegate.data_received, data)

    def _body_done(self, exchange: Exchange) -> None:
        exchange.reading = False
        self.deadline.disarm()
        if exchange.finished:
            self._next(exchange)
            return
        assert exchange.delegate is not None
        self._call(exchange, exchange.delegate.finish)

    def answered(self, exchange: Exchange) -> None:
        """The application completed its answer."""
        if exchange is not self.exchange or exchange.detached:
            return
        if not exchange.keep_alive or self.closing:
            self._close_after(exchange)
        elif not exchange.reading:
            self._next(exchange)
        # else: the rest of the body is read and dropped; _body_done moves on.

    def _next(self, exchange: Exchange) -> None:
        """Ready for the next request on this connection."""
        if not exchange.keep_alive or self.closing or self._eof:
            self._close_after(exchange)
            return
        self.exchange = None
        self.deadline.set(self.server.idle_timeout, self._idle_timeout)
        if not self._advancing:
            # Pipelined requests may be waiting; read them on the next pass,
            # not deeper in this stack.
            self._loop.call_soon(self._advance)

    # Refusing and closing

    def _refuse(self, status: int, error: str, message: str) -> None:
        """Answer a request that cannot be served (if no answer has begun), then close."""
        # DEBUG: a client sending garbage must not be able to flood the log.
        log.debug("refused a request from %s: %d %s", self.peer, status, message)
        exchange = self.exchange
        if exchange is None or not exchange.started:
            head_only = exchange is not None and exchange.head.method == "HEAD"
            self.write(error_response(status, error, message, close=True, head_only=head_only))
        if exchange is not None:
            exchange.finished = True
        self._linger()

    def _fail(self, exchange: Exchange) -> None:
        """A bug while serving a request: answer 500 if nothing was answered, and close."""
        if not exchange.started:
            self.write(error_response(500, "internal_error", "the server failed", close=True))
        exchange.finished = True
        self._linger()

    def _close_after(self, exchange: Exchange) -> None:
        """The answer said the connection ends: read and drop the rest of the body, then close."""
        if exchange.reading or not self.reader.between_requests:
            self._linger()
        else:
            self.close()

    def _linger(self) -> None:
        """Close gracefully: stop sending, read (and drop) for a while, then close.

        Closing a socket with unread bytes makes the kernel send a reset,
        which can destroy an answer the client has not read yet; so the
        client gets a FIN after the answer, and time to stop sending.
        """
        transport = self.transport
        if transport is None or self._lingering:
            return
        self._lingering = 1
        self.exchange = None
        if self._paused_reading:
            transport.resume_reading()
            self._paused_reading = False
        if transport.can_write_eof():
            transport.write_eof()
        self.deadline.set(LINGER_TIME, self.close)

    def _linger_read(self, size: int) -> None:
        self._lingering += size
        if self._lingering > LINGER_BYTES:
            self.close()

    def close(self) -> None:
        """Close the connection (what is written is still sent)."""
        self.deadline.cancel()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def shut_down(self) -> None:
        """Shutting down: close now if idle, else once the answer in progress is complete."""
        self.closing = True
        if self.exchange is None and not self._lingering:
            self.close()

    # Taking the connection over

    def detach(self) -> None:
        """No more HTTP on this connection (see :meth:`switch_protocol`)."""
        self.deadline.cancel()
        self.server.connections.discard(self)

    def switch_protocol(self, factory: ProtocolFactory) -> None:
        """Give the transport to ``factory(rest)`` and call its ``connection_made``."""
        transport = self.transport
        assert transport is not None
        self.exchange = None
        self.transport = None
        protocol = factory(self.reader.take_rest())
        transport.set_protocol(protocol)
        if self._paused_reading:
            transport.resume_reading()
        protocol.connection_made(transport)

    # Deadlines

    def _idle_timeout(self) -> None:
        if self.reader.between_requests:
            self.close()  # An idle keep-alive connection: nothing to say.
        else:
            self._refuse(408, "request_timeout", "the request head did not arrive in time")

    def _body_timeout(self) -> None:
        exchange = self.exchange
        if exchange is not None and exchange.delegate is not None and not exchange.finished:
            call_quietly(exchange.delegate.on_connection_close)
        self._refuse(408, "request_timeout", "the request body did not arrive in time")


class WireServer:
    """Serves a Tornado application (any HTTPServerConnectionDelegate) over :class:`HTTPWire`.

    :param idle_timeout: seconds a connection may take to send a request's
        head, or sit idle between requests.
    :param body_timeout: seconds a request may take to send its body.
    :param max_body_size: the largest body any request may have (413 beyond);
        handlers refuse smaller ones themselves.
    :param xheaders: trust ``X-Real-IP``/``X-Forwarded-For``/``X-Forwarded-Proto``.
    :param shortcut: asked first for every POST: the delegate that serves it
        without Tornado's request objects and routing, or None to route it
        as usual (web/publishing.py's ``PublishShortcut``).
    """

    def __init__(
        self,
        delegate: httputil.HTTPServerConnectionDelegate,
        *,
        idle_timeout: float = 10.0,
        body_timeout: float = 10.0,
        max_body_size: int = 8 << 20,
        xheaders: bool = False,
        shortcut: Shortcut | None = None,
    ) -> None:
        self.delegate = delegate
        self.shortcut = shortcut
        self.idle_timeout = idle_timeout
        self.body_timeout = body_timeout
        self.max_body_size = max_body_size
        self.xheaders = xheaders
        #: Connections serving HTTP (not those taken over by another protocol).
        self.connections: set[HTTPWire] = set()
        # Tasks in progress: the loop keeps only weak references to tasks.
        self.tasks: set[asyncio.Future[None]] = set()

    def protocol(self) -> HTTPWire:
        """A protocol for one new connection."""
        return HTTPWire(self)

    async def close_all_connections(self, grace: float = 0.0) -> None:
        """Close every connection, busy ones after their answer; return once all are gone.

        With ``grace``, idle connections are first left open that long for
        their clients to close, and every answer meanwhile ends its
        connection (``Connection: close``).  A proxy's keep-alive pool (nginx
        in front of the workers) may be sending a request on an idle
        connection at the very moment the server closes it, and that POST
        then fails after it was sent, which the proxy must not resend; left
        to close them itself (its ``keepalive_timeout`` below ``grace``), it
        never loses one.
        """
        for wire in list(self.connections):
            wire.closing = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.connections:
            if loop.time() >= deadline:
                for wire in list(self.connections):
                    wire.shut_down()
            await asyncio.sleep(0.05)


def _origin_form(target: str) -> str:
    """The path and query of an absolute-form target (``http://host/path``), else the target."""
    lower = target[:8].lower()
    if lower.startswith(("http://", "https://")):
        rest = target.split("//", 1)[1]
        slash = rest.find("/")
        return rest[slash:] if slash >= 0 else "/"
    return target
