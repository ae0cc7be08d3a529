"""The accept loop: new connections handed to a protocol, surviving running out of descriptors.

Out of file descriptors, a listening socket stays readable and a naive accept
loop spins on it, logging on every pass (Tornado's does).  Here the loop stops
watching the socket for a moment instead (pending connections wait in the
kernel's backlog) and logs once per streak, at most once every 10 seconds.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger("tornado_channels.server")

#: Errors that mean "no resources for another connection right now".
_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
#: Seconds between two logged streaks of "out of descriptors".
LOG_EVERY = 10.0
#: Connections accepted per readiness event, so one busy listener cannot
#: starve the rest of the loop.
_BATCH = 128


class Acceptor:
    """Accepts on listening sockets and gives each connection to ``protocol()``.

    ``pause`` is how long it waits before trying again when out of descriptors.
    """

    def __init__(self, protocol: Callable[[], asyncio.Protocol], pause: float = 0.25) -> None:
        self.protocol = protocol
        self.pause = pause
        self._sockets: list[socket.socket] = []
        self._stopped = False
        # Pauses in the current streak; whether it was logged; when the last was.
        self._paused = 0
        self._logged = False
        self._last_log = -LOG_EVERY
        self._adopting: set[asyncio.Future[Any]] = set()

    def listen(self, sockets: Iterable[socket.socket]) -> None:
        """Start accepting on ``sockets`` (bound, listening, non-blocking)."""
        loop = asyncio.get_running_loop()
        for sock in sockets:
            sock.setblocking(False)
            self._sockets.append(sock)
            loop.add_reader(sock.fileno(), self._accept, sock)

    def stop(self) -> None:
        """Stop accepting and close the listening sockets."""
        self._stopped = True
        loop = asyncio.get_running_loop()
        for sock in self._sockets:
            loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets.clear()

    def _accept(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(_BATCH):
            try:
                connection, _address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue
            except OSError as exc:
                if exc.errno not in _EXHAUSTED:
                    raise
                self._exhausted(sock, exc)
                return
            if self._paused:
                if self._logged:
                    log.warning("accepting again after %d pauses", self._paused)
                self._paused = 0
                self._logged = False
            self._adopt(loop, connection)

    def _exhausted(self, sock: socket.socket, exc: OSError) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(sock.fileno())
        loop.call_later(self.pause, self._resume, sock)
        now = time.monotonic()
        if not self._paused and now - self._last_log >= LOG_EVERY:
            # A limit that flaps (the backlog drains, fills again) starts many
            # streaks: log one every LOG_EVERY seconds.
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            log.error(
                "cannot accept connections: %s (file descriptor limit %d); "
                "pausing accepts until descriptors free up",
                exc.strerror,
                soft,
            )
            self._logged = True
            self._last_log = now
        self._paused += 1

    def _resume(self, sock: socket.socket) -> None:
        if not self._stopped and sock.fileno() >= 0:
            asyncio.get_running_loop().add_reader(sock.fileno(), self._accept, sock)

    def _adopt(self, loop: asyncio.AbstractEventLoop, connection: socket.socket) -> None:
        connection.setblocking(False)
        adopting = asyncio.ensure_future(
            loop.connect_accepted_socket(self.protocol, sock=connection)
        )
        self._adopting.add(adopting)

        def adopted(future: asyncio.Future[Any]) -> None:
            self._adopting.discard(future)
            if future.cancelled() or future.exception() is not None:
                # A connection reset before it was adopted, or none to spare.
                connection.close()

        adopting.add_done_callback(adopted)
