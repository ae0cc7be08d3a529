"""What the web layer needs of the HTTP connection a request came on: one typed seam.

The channel routes are served by two HTTP stacks: the standalone server's
wire (server/wire.py, whose per-request ``Exchange`` implements
:class:`ServerConnection` itself) and Tornado's own ``HTTPServer``, where a
host application mounts them (adapted here by :class:`TornadoServerConnection`).
Publishing, the WebSocket takeover and event streams each ask
:func:`connection_of` for the request's connection and have one code path;
what differs between the stacks lives behind these six members, checked by
mypy, never probed for.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Mapping

import tornado.web
from tornado import httputil
from tornado.http1connection import HTTP1Connection
from tornado.iostream import IOStream

from ..core.http1 import RequestHead
from . import _tornado
from .connection import StreamTransport

#: Builds the protocol that takes a socket over, from the bytes the client
#: sent after its request (the first WebSocket frames, say).
ProtocolFactory = Callable[[bytes], asyncio.Protocol]


class ServerConnection(abc.ABC):
    """One request's connection, as the web layer uses it."""

    @property
    @abc.abstractmethod
    def loop(self) -> asyncio.AbstractEventLoop:
        """The connection's event loop (asked once, not per request: it costs a getpid)."""

    @property
    @abc.abstractmethod
    def lingers(self) -> bool:
        """Whether an answer given before the body was read still reaches the client.

        The standalone wire reads and drops the rest of the body, then closes
        gracefully; Tornado's server closes at once, so a refusal there waits
        for the body (publish_body.DISCARD_LIMIT).
        """

    @property
    @abc.abstractmethod
    def remote_ip(self) -> str:
        """The client's address (from a trusted proxy's headers with ``--xheaders``)."""

    @abc.abstractmethod
    def write_answer(
        self, code: int, reason: str, fields: Mapping[str, str], body: bytes | None
    ) -> None:
        """Write a whole answer and finish the request; ``body`` is None for a HEAD.

        ``fields`` must include ``Content-Length``; nothing in them may come
        from the client unchecked.
        """

    @abc.abstractmethod
    def buffered_bytes(self) -> int:
        """Bytes written to the client that it has not taken yet (a slow consumer's backlog)."""

    @abc.abstractmethod
    async def take_over(
        self, handler: tornado.web.RequestHandler, factory: ProtocolFactory
    ) -> None:
        """End HTTP on this connection (``handler.detach()``) and hand its socket over.

        The socket goes to ``factory(rest)``, ``rest`` being what the client
        sent after its request.
        """


class WireConnection(httputil.HTTPConnection, ServerConnection):
    """A connection that is both Tornado's ``HTTPConnection`` and a :class:`ServerConnection`.

    The standalone server's wire implements this (server/wire.py's
    ``Exchange``): Tornado's request objects and handlers run on it as on
    Tornado's own, and the publishing shortcut serves a POST on it from the
    head alone.
    """


class TornadoServerConnection(ServerConnection):
    """A request's connection on Tornado's own server (a host application's ``HTTPServer``)."""

    __slots__ = ("_connection", "_loop", "_request")

    def __init__(self, connection: HTTP1Connection, request: httputil.HTTPServerRequest) -> None:
        self._connection = connection
        self._request = request
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (Tornado's server runs on it)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    @property
    def lingers(self) -> bool:
        """Tornado's server closes a connection answered mid-body at once."""
        return False

    @property
    def remote_ip(self) -> str:
        """What Tornado's request says (its server applies ``xheaders`` itself)."""
        return self._request.remote_ip or ""

    def write_answer(
        self, code: int, reason: str, fields: Mapping[str, str], body: bytes | None
    ) -> None:
        """Write the answer through Tornado's ``HTTPConnection`` interface."""
        start_line = httputil.ResponseStartLine("HTTP/1.1", code, reason)
        self._connection.write_headers(start_line, httputil.HTTPHeaders(fields), body)
        self._connection.finish()

    def buffered_bytes(self) -> int:
        """What the connection's IOStream still holds to write."""
        return _tornado.queued_bytes(self._connection.stream)

    async def take_over(
        self, handler: tornado.web.RequestHandler, factory: ProtocolFactory
    ) -> None:
        """Move the socket from the IOStream to the loop's own transport (or, for TLS, over it)."""
        stream = handler.detach()
        # What the client sent after its request (frames the stream already read).
        protocol = factory(_tornado.read_ahead(stream))
        if type(stream) is IOStream and stream.socket is not None:
            # A duplicate of the socket goes to the loop's transport; closing
            # the stream then releases only its own descriptor.
            sock = stream.socket.dup()
            stream.close()
            try:
                await self.loop.connect_accepted_socket(lambda: protocol, sock=sock)
            except BaseException:
                sock.close()
                raise
        else:
            # TLS: the session stays in its SSLSocket.
            StreamTransport(stream, protocol)


def connection_of(request: httputil.HTTPServerRequest) -> ServerConnection:
    """The seam over the connection ``request`` came on: the wire's own, or Tornado's adapted."""
    connection = request.connection
    if isinstance(connection, ServerConnection):
        return connection
    if isinstance(connection, HTTP1Connection):
        return TornadoServerConnection(connection, request)
    raise TypeError(f"requests on {type(connection).__name__} connections are not supported")


def tornado_head(
    head: RequestHead, target: str | None = None
) -> tuple[httputil.RequestStartLine, httputil.HTTPHeaders]:
    """Tornado's start line and header fields for a request the wire read (``target``: as given)."""
    headers = httputil.HTTPHeaders()
    for name, value in head.fields:
        headers.add(name, value)
    start_line = httputil.RequestStartLine(
        head.method, head.target if target is None else target, head.version
    )
    return start_line, headers
