"""The HTTP server's accept loop, made to survive running out of file descriptors.

Tornado's accept handler lets EMFILE escape: the IOLoop logs it, the listening
socket is still readable, and the loop spins on it, logging on every pass.
Here, out of descriptors, the server stops watching the socket for a moment
(pending connections wait in the kernel's backlog) and logs once per streak,
at most once every 10 seconds.
"""

from __future__ import annotations

import errno
import logging
import resource
import socket
import time
from collections.abc import Callable, Iterable

from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop

log = logging.getLogger("tornado_channels.server")

#: Errors that mean "no resources for another connection right now".
_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
#: Seconds between two logged streaks of "out of descriptors".
_LOG_EVERY = 10.0
#: Connections accepted per readiness event, as Tornado does, so one busy
#: listener cannot starve the rest of the loop.
_BATCH = 128


class ChannelHTTPServer(HTTPServer):
    """An :class:`~tornado.httpserver.HTTPServer` that pauses accepting when out of descriptors.

    ``accept_pause`` is how long it waits before trying again.
    """

    accept_pause = 0.25

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        """Accept on ``sockets`` with the resource-aware accept loop."""
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = self._watch(sock)

    def _watch(self, sock: socket.socket) -> Callable[[], None]:
        io_loop = IOLoop.current()
        # paused: pauses in this streak; logged: whether this streak was logged;
        # last_log: when a streak was last logged (monotonic seconds).
        state = {"stopped": False, "paused": 0, "logged": False, "last_log": -_LOG_EVERY}

        def resume() -> None:
            if not state["stopped"]:
                io_loop.add_handler(sock, on_readable, IOLoop.READ)

        def on_readable(fd: object, events: int) -> None:
            for _ in range(_BATCH):
                try:
                    connection, address = sock.accept()
                except BlockingIOError:
                    break
                except ConnectionAbortedError:
                    continue
                except OSError as exc:
                    if exc.errno not in _EXHAUSTED:
                        raise
                    io_loop.remove_handler(sock)
                    io_loop.call_later(self.accept_pause, resume)
                    now = time.monotonic()
                    if not state["paused"] and now - state["last_log"] >= _LOG_EVERY:
                        # A limit that flaps (the backlog drains, fills again)
                        # starts many streaks: log one every _LOG_EVERY seconds.
                        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
                        log.error(
                            "cannot accept connections: %s (file descriptor limit %d); "
                            "pausing accepts until descriptors free up",
                            exc.strerror,
                            soft,
                        )
                        state["logged"] = True
                        state["last_log"] = now
                    state["paused"] += 1
                    return
                if state["paused"]:
                    if state["logged"]:
                        log.warning("accepting again after %d pauses", state["paused"])
                    state["paused"] = 0
                    state["logged"] = False
                self._handle_connection(connection, address)

        def stop() -> None:
            state["stopped"] = True
            io_loop.remove_handler(sock)

        io_loop.add_handler(sock, on_readable, IOLoop.READ)
        return stop
