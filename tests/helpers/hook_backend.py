"""A real HTTP backend for the hook tests: answers --auth-url and --publish-url as told, counting.

It runs on the test's own event loop, on a port of our range (never an
ephemeral one: see local_backend.py).  By default it allows every subscribe, naming the user
after the ``session`` cookie (``session=u42`` is user ``u42``), and passes
every publish unchanged; ``answers[(kind, channel)]`` overrides one (a
status and a JSON body or raw bytes), and ``hold`` makes it wait (a backend
that does not answer in time) until released.
"""

from __future__ import annotations

import asyncio
import json
from http.cookies import SimpleCookie
from typing import Any

import tornado.web

from .local_backend import LocalBackend

#: An answer: a status, and a JSON-able body (dict) or raw bytes.
Answer = tuple[int, "dict[str, Any] | bytes"]


class HookBackend(LocalBackend):
    """The application's backend, as the hooks see it."""

    path = "/hook"

    def __init__(self, port: int | None = None) -> None:
        super().__init__(port)
        self.answers: dict[tuple[str, str], Answer] = {}
        #: Every request body received, in order.
        self.received: list[dict[str, Any]] = []
        #: While set, requests wait for it to be cleared (see release).
        self.hold = False
        self._released = asyncio.Event()
        self.expires_in: float | None = 600

    def handler(self) -> tuple[type, dict[str, Any]]:
        """Every hook request goes to :meth:`answer`."""
        return _Hook, {"backend": self}

    async def stop(self) -> None:
        """Release what waits, stop listening and close every connection."""
        self.release()
        await super().stop()

    def release(self) -> None:
        """Let held requests answer."""
        self.hold = False
        self._released.set()

    def count(self, kind: str = "subscribe") -> int:
        """Requests of ``kind`` received."""
        return sum(1 for body in self.received if body["kind"] == kind)

    async def answer(self, body: dict[str, Any]) -> Answer:
        self.received.append(body)
        if self.hold:
            self._released.clear()
            await self._released.wait()
        override = self.answers.get((body["kind"], body["channel"]))
        if override is not None:
            return override
        if body["kind"] == "publish":
            return 200, b""
        cookie: SimpleCookie = SimpleCookie(body["headers"].get("Cookie", ""))
        user = cookie["session"].value if "session" in cookie else None
        return 200, {"user": user, "expires_in": self.expires_in}


class _Hook(tornado.web.RequestHandler):
    def initialize(self, backend: HookBackend) -> None:
        self.backend = backend

    async def post(self) -> None:
        status, body = await self.backend.answer(json.loads(self.request.body))
        self.set_status(status)
        if status in (204, 304):
            self.finish()
            return
        self.finish(json.dumps(body) if isinstance(body, dict) else body)


async def _serve(port: int) -> None:
    """Serve an allow-everything backend on ``port`` until killed (the bench's)."""
    backend = HookBackend(port).start()
    try:
        await asyncio.Event().wait()
    finally:
        await backend.stop()


if __name__ == "__main__":
    # python -m tests.helpers.hook_backend PORT: the backend in a process of its own.
    import sys

    asyncio.run(_serve(int(sys.argv[1])))
