"""The standalone server's HTTP/1.1 wire: requests read by :mod:`.http1`, served by Tornado.

Each connection is an :class:`HTTPWire`, a small asyncio protocol on the
event loop's own transport.  It reads requests with the strict
:class:`~.http1.RequestReader` and hands each one to the Tornado application
through Tornado's public server interface
(:class:`~tornado.httputil.HTTPServerConnectionDelegate`, with an
:class:`Exchange` as the request's :class:`~tornado.httputil.HTTPConnection`),
so routing and handlers are Tornado's own; a POST is first offered to the
application's publishing shortcut, which serves publishes from the head alone
(web/publishing.py) and declines everything else.  What it does itself:

- every refusal it makes is answered, in JSON like every other error:
  malformed requests (400, 501, 505), heads too large (431, 414), bodies
  past the server's cap (413), requests that stall (408);
- an answer given before the request's body was read still reaches the
  client: the rest of the body is read and dropped, and the connection lives
  on when that rest is small, or is closed gracefully after it (``Connection:
  close``, then a lingering close bounded in bytes and time), never reset
  while the client is still sending;
- keep-alive and pipelining (answers in order, one request at a time),
  ``Expect: 100-continue``, chunked bodies and answers, HEAD;
- the header and body timeouts;
- handing the socket over to another protocol (the WebSocket edge) with the
  bytes that came after the handshake.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from tornado import httputil
from tornado.iostream import StreamClosedError

from ..core.http1 import END, BadRequest, RequestHead, RequestReader, http_date
from ..web.errors import JSON_TYPE, error_body, reason

log = logging.getLogger("tornado_channels.server")

#: Body bytes still to come after an early answer that are read and dropped
#: with the connection kept alive; with more, the answer closes it.
DISCARD_KEEPALIVE = 64 << 10
#: After an answer that closes the connection: how long, and how many body
#: bytes, it is still read (and dropped) so the answer is never lost to a reset.
LINGER_TIME = 5.0
LINGER_BYTES = 64 << 20
#: Request bytes buffered while an answer is pending (pipelining) past which
#: reading pauses.
MAX_BUFFERED = 1 << 20

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_NONE, _FIXED, _CHUNKED, _UNTIL_CLOSE = range(4)

#: Serves a request straight from its head (see WireServer), or declines with None.
Shortcut = Callable[["Exchange", RequestHead], "httputil.HTTPMessageDelegate | None"]


class WireContext:
    """What Tornado's request reads from its connection: the peer's address and the scheme."""

    __slots__ = ("protocol", "remote_ip")

    def __init__(self, remote_ip: str, protocol: str) -> None:
        self.remote_ip = remote_ip
        self.protocol = protocol

    def __str__(self) -> str:
        return self.remote_ip


def apply_xheaders(context: WireContext, head: RequestHead) -> None:
    """Take the client's address and scheme from a trusted proxy's headers (``--xheaders``)."""
    forwarded = head.field("X-Forwarded-For")
    real_ip = head.field("X-Real-Ip") or (forwarded.split(",")[-1].strip() if forwarded else None)
    if real_ip:
        context.remote_ip = real_ip
    scheme = head.field("X-Scheme") or head.field("X-Forwarded-Proto")
    if scheme:
        scheme = scheme.split(",")[-1].strip().lower()
        if scheme in ("http", "https"):
            context.protocol = scheme


def error_response(
    status: int, error: str, message: str, *, close: bool, head_only: bool = False
) -> bytes:
    """A whole JSON error answer, as every refusal is written."""
    body = error_body(error, message)
    lines = [
        f"HTTP/1.1 {status} {reason(status)}",
        f"Content-Type: {JSON_TYPE}",
        f"Content-Length: {len(body)}",
        "Cache-Control: no-store",
        f"Date: {http_date()}",
    ]
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


class Exchange(httputil.HTTPConnection):
    """One request and its answer on an :class:`HTTPWire`: Tornado's view of the connection."""

    def __init__(self, wire: HTTPWire, head: RequestHead, context: WireContext) -> None:
        self.wire = wire
        self.head = head
        self.context = context
        self.delegate: httputil.HTTPMessageDelegate | None = None
        #: Whether the request's body is still being read, and whether reading
        #: it waits for the application (a streaming handler's coroutine).
        self.reading = True
        self.waiting = False
        self.received = 0
        #: Whether the answer has begun, and whether it is complete.
        self.started = False
        self.finished = False
        self.detached = False
        #: This connection answers early refusals itself without losing them
        #: (see HTTPWire._linger); an edge need not read a body to refuse it.
        self.lingers = True
        self.keep_alive = head.keep_alive
        self._framing = _NONE
        self._remaining = 0
        self._close_callback: Callable[[], None] | None = None
        self._continue_sent = False

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The connection's event loop (asked once per connection, not per request)."""
        return self.wire._loop

    # httputil.HTTPConnection

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> asyncio.Future[None]:
        """Write the answer's status line and headers (and a first piece of body)."""
        assert isinstance(start_line, httputil.ResponseStartLine)
        self.started = True
        code = start_line.code
        method = self.head.method
        if method == "HEAD" or code in (204, 304) or 100 <= code < 200:
            self._framing = _NONE
        elif "Content-Length" in headers:
            self._framing = _FIXED
            self._remaining = int(headers["Content-Length"])
        elif self.head.version == "HTTP/1.1":
            self._framing = _CHUNKED
            headers["Transfer-Encoding"] = "chunked"
        else:
            self._framing = _UNTIL_CLOSE
            self.keep_alive = False
        connection = self._connection_field()
        if connection:
            headers["Connection"] = connection
        lines = [f"HTTP/1.1 {code} {start_line.reason}"]
        lines += [f"{name}: {value}" for name, value in headers.get_all()]
        for line in lines:
            if "\r" in line or "\n" in line:
                raise ValueError(f"illegal characters (CR or LF) in a header: {line!r}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if chunk:
            data += self._frame(chunk)
        return self.wire.write(data)

    def write_answer(self, code: int, reason: str, fields: str, body: bytes | None) -> None:
        """Write a whole answer and finish: ``fields`` are CRLF-ended lines with Content-Length.

        What :meth:`write_headers`, :meth:`write` and :meth:`finish` do for
        an answer known whole, without Tornado's objects (the publishing
        shortcut); ``body`` is None for a HEAD.  Nothing in ``fields`` may
        come from the client unchecked: they are written as they are.
        """
        self.started = True
        self._framing = _NONE
        connection = self._connection_field()
        if connection:
            fields += f"Connection: {connection}\r\n"
        head = f"HTTP/1.1 {code} {reason}\r\n{fields}\r\n".encode("latin-1")
        self.wire.write(head + body if body else head)
        self.finish()

    def _connection_field(self) -> str:
        """The answer's ``Connection`` value ("" for none); decides whether the connection lives."""
        if self.reading and not self._small_rest():
            # Answered before its body was read, with much of it still to come.
            self.keep_alive = False
        if self.wire.closing:
            self.keep_alive = False
        if not self.keep_alive:
            return "close"
        return "keep-alive" if self.head.version == "HTTP/1.0" else ""

    def write(self, chunk: bytes) -> asyncio.Future[None]:
        """Write a piece of the answer's body."""
        return self.wire.write(self._frame(chunk))

    def finish(self) -> None:
        """The answer is complete."""
        if self._framing == _CHUNKED:
            self.wire.write(b"0\r\n\r\n")
        elif self._framing == _FIXED and self._remaining:
            log.error("an answer ended %d bytes short of its Content-Length", self._remaining)
            self.keep_alive = False
        elif self._framing == _UNTIL_CLOSE:
            self.keep_alive = False
        self.finished = True
        self._close_callback = None
        self.wire.answered(self)

    def set_close_callback(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` if the client goes away before the answer is complete."""
        self._close_callback = callback

    def set_body_timeout(self, timeout: float) -> None:
        """Not adjustable per request here (the server's --body-timeout applies)."""

    def set_max_body_size(self, max_body_size: int) -> None:
        """Not adjustable per request here (the server's cap applies)."""

    def detach(self) -> Exchange:
        """Stop serving HTTP on this connection; :meth:`switch_protocol` then takes it over."""
        self.detached = True
        self.finished = True
        self.wire.detach()
        return self

    # For the WebSocket edge (duck-typed there: it knows no server module)

    def switch_protocol(self, factory: Callable[[bytes], asyncio.Protocol]) -> None:
        """Hand the socket to ``factory(rest)``; ``rest`` is what the client sent after its head."""
        self.wire.switch_protocol(factory)

    def buffered_bytes(self) -> int:
        """Bytes written to the client that it has not yet taken."""
        transport = self.wire.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    # From the wire

    def connection_lost(self) -> None:
        """The client went away: tell whoever is still waiting for this request."""
        delegate = self.delegate
        if delegate is not None and self.reading:
            _call(delegate.on_connection_close)
        elif self._close_callback is not None:
            _call(self._close_callback)
        self._close_callback = None

    def maybe_continue(self) -> None:
        """Invite the body (``Expect: 100-continue``) unless the request was already answered."""
        if self.head.expect_continue and self.head.has_body and not self.started:
            self._continue_sent = True
            self.wire.write(_CONTINUE)

    def _small_rest(self) -> bool:
        """Whether the body still to come is known to be small enough to read and drop."""
        head = self.head
        if head.expect_continue and not self._continue_sent:
            return False  # The client may or may not send it: only closing is clear.
        if head.chunked or head.length is None:
            return not head.has_body
        return head.length - self.received <= DISCARD_KEEPALIVE

    def _frame(self, chunk: bytes) -> bytes:
        framing = self._framing
        if framing == _NONE or not chunk:
            return b""
        if framing == _CHUNKED:
            return b"%x\r\n%s\r\n" % (len(chunk), chunk)
        if framing == _FIXED:
            if len(chunk) > self._remaining:
                raise httputil.HTTPOutputError("tried to write more data than Content-Length")
            self._remaining -= len(chunk)
        return chunk


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
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._on_time: Callable[[], None] | None = None
        self._paused_reading = False
        self._paused_writing = False
        self._drained: list[asyncio.Future[None]] = []
        self._lingering = 0
        self._eof = False
        self._gone = False

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Start waiting for the first request (within the idle timeout)."""
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and peer:
            self.peer = str(peer[0])
        self.server.connections.add(self)
        self._set_timer(self.server.idle_timeout, self._idle_timeout)

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
        self._cancel_timer()
        self.server.connections.discard(self)
        self.transport = None
        exchange, self.exchange = self.exchange, None
        if exchange is not None and not exchange.detached:
            exchange.connection_lost()
        for waiter in self._drained:
            if not waiter.done():
                waiter.set_exception(StreamClosedError())
                waiter.exception()  # Retrieved: nobody may be waiting for it.
        self._drained.clear()

    def pause_writing(self) -> None:
        """The transport's buffer is full: writers wait (see :meth:`write`)."""
        self._paused_writing = True

    def resume_writing(self) -> None:
        """The transport's buffer drained: release the writers."""
        self._paused_writing = False
        waiters, self._drained = self._drained, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # Writing

    def write(self, data: bytes) -> asyncio.Future[None]:
        """Write ``data``; the future resolves once the transport can take more."""
        future: asyncio.Future[None] = self._loop.create_future()
        transport = self.transport
        if transport is None or transport.is_closing():
            future.set_exception(StreamClosedError())
            future.exception()
            return future
        if data:
            transport.write(data)
        if self._paused_writing:
            self._drained.append(future)
        else:
            future.set_result(None)
        return future

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
        full = self.reader.buffered > MAX_BUFFERED
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
        if head.has_body:
            self._set_timer(self.server.body_timeout, self._body_timeout)
        else:
            self._disarm()
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
        headers = httputil.HTTPHeaders()
        for name, value in head.fields:
            headers.add(name, value)
        target = _origin_form(head.target)
        start_line = httputil.RequestStartLine(head.method, target, head.version)
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
                _call(exchange.delegate.on_connection_close)
            raise BadRequest(
                413,
                "request_too_large",
                f"the body exceeds the server's limit of {self.server.max_body_size} bytes",
            )
        assert exchange.delegate is not None
        self._call(exchange, exchange.delegate.data_received, data)

    def _body_done(self, exchange: Exchange) -> None:
        exchange.reading = False
        self._disarm()
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
        self._set_timer(self.server.idle_timeout, self._idle_timeout)
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
        self._set_timer(LINGER_TIME, self.close)

    def _linger_read(self, size: int) -> None:
        self._lingering += size
        if self._lingering > LINGER_BYTES:
            self.close()

    def close(self) -> None:
        """Close the connection (what is written is still sent)."""
        self._cancel_timer()
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
        self._cancel_timer()
        self.server.connections.discard(self)

    def switch_protocol(self, factory: Callable[[bytes], asyncio.Protocol]) -> None:
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

    # Timers

    # One deadline at a time (idle, body, linger), kept lazily: moving it
    # later, as every request on a kept-alive connection does twice, only
    # writes it down; the timer already set fires first and sets itself again
    # for the rest.  A timer made and cancelled per request was measurable.

    def _set_timer(self, delay: float, callback: Callable[[], None]) -> None:
        if delay <= 0:
            self._cancel_timer()
            return
        deadline = self._loop.time() + delay
        self._deadline = deadline
        self._on_time = callback
        timer = self._timer
        if timer is not None:
            if timer.when() <= deadline:
                return
            timer.cancel()
        self._timer = self._loop.call_at(deadline, self._ring)

    def _disarm(self) -> None:
        """No deadline for now (the timer, if set, will find nothing to do)."""
        self._on_time = None

    def _cancel_timer(self) -> None:
        self._on_time = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _ring(self) -> None:
        self._timer = None
        callback = self._on_time
        if callback is None:
            return
        if self._deadline > self._loop.time():
            self._timer = self._loop.call_at(self._deadline, self._ring)
            return
        self._on_time = None
        callback()

    def _idle_timeout(self) -> None:
        if self.reader.between_requests:
            self.close()  # An idle keep-alive connection: nothing to say.
        else:
            self._refuse(408, "request_timeout", "the request head did not arrive in time")

    def _body_timeout(self) -> None:
        exchange = self.exchange
        if exchange is not None and exchange.delegate is not None and not exchange.finished:
            _call(exchange.delegate.on_connection_close)
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

    async def close_all_connections(self) -> None:
        """Close idle connections now, busy ones after their answer; return once all are gone."""
        while self.connections:
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


def _call(callback: Callable[[], Any]) -> None:
    try:
        callback()
    except Exception:
        log.exception("a connection-close callback failed")
