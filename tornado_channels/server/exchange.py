"""One request and its answer on the standalone server's wire (see :mod:`.wire`).

An :class:`Exchange` is what Tornado's request and handlers see as their
connection (``HTTPConnection``), and what the web layer sees
(``ServerConnection``): it frames the answer (fixed, chunked, or until
close), decides whether the connection lives on after it, and hands the
socket over when a WebSocket takes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import tornado.web
from tornado import httputil

from ..core.http1 import RequestHead, http_date
from ..web.errors import JSON_TYPE, error_body, reason
from ..web.server_connection import ProtocolFactory, WireConnection

log = logging.getLogger("tornado_channels.server")

#: Body bytes still to come after an early answer that are read and dropped
#: with the connection kept alive; with more, the answer closes it.
DISCARD_KEEPALIVE = 64 << 10


class Carrier(Protocol):
    """What an exchange needs of the connection it travels on (server/wire.py's ``HTTPWire``)."""

    transport: asyncio.Transport | None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The connection's event loop."""

    @property
    def closing(self) -> bool:
        """Whether the connection ends after the answer in progress (shutting down)."""

    def write(self, data: bytes) -> asyncio.Future[None]:
        """Send ``data``; the future resolves once the transport has room again."""

    def answered(self, exchange: Exchange) -> None:
        """``exchange``'s answer is complete: end the connection or read the next request."""

    def detach(self) -> None:
        """No more HTTP on this connection."""

    def switch_protocol(self, factory: ProtocolFactory) -> None:
        """Hand the transport, and what was read past the request, to ``factory``'s protocol."""


_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_NONE, _FIXED, _CHUNKED, _UNTIL_CLOSE = range(4)


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
    # X-Forwarded-Proto first: the standard name, the one the shipped nginx
    # sets (and overwrites), where X-Scheme passes through from the client.
    scheme = head.field("X-Forwarded-Proto") or head.field("X-Scheme")
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


class Exchange(WireConnection):
    """One request and its answer on a connection (a :class:`Carrier`: server/wire.py's).

    Tornado's view of the connection (``HTTPConnection``), and the web
    layer's (``ServerConnection``).
    """

    def __init__(self, wire: Carrier, head: RequestHead, context: WireContext) -> None:
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
        self.keep_alive = head.keep_alive
        self._framing = _NONE
        self._remaining = 0
        self._close_callback: Callable[[], None] | None = None
        self._continue_sent = False

    # ServerConnection

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The connection's event loop (asked once per connection, not per request)."""
        return self.wire.loop

    @property
    def lingers(self) -> bool:
        """True: early refusals are never lost (see HTTPWire._linger), so none waits for a body."""
        return True

    @property
    def remote_ip(self) -> str:
        """The peer's address, or a trusted proxy's word for the client's (``--xheaders``)."""
        return self.context.remote_ip

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

    def write_answer(
        self, code: int, reason: str, fields: Mapping[str, str], body: bytes | None
    ) -> None:
        """Write a whole answer and finish (``fields`` with Content-Length; no body for HEAD).

        What :meth:`write_headers`, :meth:`write` and :meth:`finish` do for
        an answer known whole, without Tornado's objects (the publishing
        shortcut).  Nothing in ``fields`` may come from the client unchecked:
        they are written as they are.
        """
        self.started = True
        self._framing = _NONE
        lines = "".join(f"{name}: {value}\r\n" for name, value in fields.items())
        connection = self._connection_field()
        if connection:
            lines += f"Connection: {connection}\r\n"
        head = f"HTTP/1.1 {code} {reason}\r\n{lines}\r\n".encode("latin-1")
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

    async def take_over(
        self, handler: tornado.web.RequestHandler, factory: ProtocolFactory
    ) -> None:
        """Detach the handler and hand the transport to ``factory(rest)`` (see HTTPWire)."""
        handler.detach()  # Calls detach() here: no more HTTP on this connection.
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
            call_quietly(delegate.on_connection_close)
        elif self._close_callback is not None:
            call_quietly(self._close_callback)
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


def call_quietly(callback: Callable[[], Any]) -> None:
    """Call a connection-close callback; a failing one is logged, never raised into the wire."""
    try:
        callback()
    except Exception:
        log.exception("a connection-close callback failed")
