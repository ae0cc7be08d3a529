"""Keep-alive HTTP/1.1 connections for the sync :class:`~.publisher.Publisher` (standard library).

``http.client`` sends a small request (head and body) in one write and reads
the answer with little Python in between: against httpx's sync client on the
same machine it costs about a quarter of the client CPU per publish (see
docs/performance.md), and it is no dependency at all.  This module adds what
it lacks: a thread-safe pool, a check that an idle connection was not
closed by the server meanwhile, and errors that say whether the request can
have reached the server.
"""

from __future__ import annotations

import http.client
import select
import threading
from urllib.parse import urlsplit

from .errors import ConnectionFailed

#: What one request returns: the status, the body, and its Retry-After header.
Answer = tuple[int, bytes, str | None]


class ConnectionPool:
    """Up to ``size`` idle keep-alive connections to one origin, shared by threads."""

    def __init__(self, origin: str, timeout: float, size: int) -> None:
        parts = urlsplit(origin)
        self._factory = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port
        self._timeout = timeout
        self._size = size
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._closed = False

    def request(self, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        """POST ``body`` to ``path``; raise :class:`ConnectionFailed` (saying if it was sent)."""
        conn = self._take()
        try:
            conn.request("POST", path, body, headers)
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise ConnectionFailed(
                f"the connection failed before the answer: {type(exc).__name__}: {exc}", sent=True
            ) from exc
        if response.will_close:
            conn.close()
        else:
            self._give(conn)
        return response.status, data, response.getheader("Retry-After")

    def _take(self) -> http.client.HTTPConnection:
        """An idle connection still open, or a new one (connected here: failures are unsent)."""
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                break
            if _usable(conn):
                return conn
            conn.close()
        conn = self._factory(self._host, self._port, timeout=self._timeout)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            raise ConnectionFailed(
                f"could not connect: {type(exc).__name__}: {exc}", sent=False
            ) from exc
        return conn

    def _give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._size:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close every idle connection; those in use close when their request ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _usable(conn: http.client.HTTPConnection) -> bool:
    """Whether an idle connection is still open: the server may have closed it meanwhile.

    An idle keep-alive connection has nothing to read; if it is readable, the
    server closed it (or sent something unasked for), and it must not be used.
    """
    sock = conn.sock
    if sock is None:
        return False
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable
