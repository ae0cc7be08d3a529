"""What the tests' HTTP backends share: a Tornado app of the test's, on a port of our range.

The port is bound when the backend is made (never an ephemeral one), so a
process may be told the URL before the backend listens: its connections are
refused until :meth:`LocalBackend.start`.  It runs on the test's own loop.
"""

from __future__ import annotations

import socket
from typing import Any, Self

from tornado.httpserver import HTTPServer
from tornado.web import Application

from .support import bound_socket


class LocalBackend:
    """A backend at ``url`` (``path`` on a local port); subclasses name their handler."""

    #: The one path it serves.
    path = "/"

    def __init__(self, port: int | None = None) -> None:
        self._socket: socket.socket | None = bound_socket() if port is None else _bound(port)
        self.port = self._socket.getsockname()[1]
        self._server: HTTPServer | None = None

    @property
    def url(self) -> str:
        """Where a server reaches it."""
        return f"http://127.0.0.1:{self.port}{self.path}"

    def handler(self) -> tuple[type, dict[str, Any]]:
        """The RequestHandler serving ``path``, and its ``initialize`` arguments."""
        raise NotImplementedError

    def start(self) -> Self:
        """Listen (on the running loop)."""
        assert self._socket is not None, "started twice"
        sock, self._socket = self._socket, None
        sock.setblocking(False)
        sock.listen(128)
        handler, arguments = self.handler()
        self._server = HTTPServer(Application([(self.path, handler, arguments)]))
        self._server.add_sockets([sock])
        return self

    async def stop(self) -> None:
        """Stop listening and close every connection."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
            self._server = None


def _bound(port: int) -> socket.socket:
    """A socket bound to ``port`` on 127.0.0.1 (a port a test chose, or a process was told)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock
