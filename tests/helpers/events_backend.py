"""A real HTTP backend for ``--events-url``: a Tornado app on a free port that keeps every batch."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import Any

from tornado.web import RequestHandler

from .local_backend import LocalBackend
from .support import until


class _Receiver(RequestHandler):
    def initialize(self, backend: EventsBackend) -> None:
        self.backend = backend

    def post(self) -> None:
        backend = self.backend
        backend.attempts += 1
        backend.offered.extend(json.loads(self.request.body)["events"])
        if backend.status != 200:
            self.set_status(backend.status)
            self.finish({"error": "down"})
            return
        batch = json.loads(self.request.body)["events"]
        backend.batches.append(batch)
        backend.last_at = time.monotonic()
        backend.first_at = backend.first_at or backend.last_at
        backend.received.extend(batch)
        self.finish({"ok": True})


class EventsBackend(LocalBackend):
    """Receives event batches at ``url``; answers ``status`` (200 keeps them, else refuses).

    Its port is bound when made, so a process may be told the URL before the
    backend listens (connections are refused until :meth:`start`).
    """

    path = "/events"

    def __init__(self) -> None:
        super().__init__()
        self.status = 200
        self.attempts = 0
        self.batches: list[list[dict[str, Any]]] = []
        #: When the first and the latest batch were taken (monotonic seconds).
        self.first_at = self.last_at = 0.0
        #: Every event offered, taken or refused.
        self.offered: list[dict[str, Any]] = []
        #: Every event received, in arrival order, duplicates included.
        self.received: list[dict[str, Any]] = []

    def handler(self) -> tuple[type, dict[str, Any]]:
        """Every batch goes to the receiver."""
        return _Receiver, {"backend": self}

    def unique(self) -> dict[str, dict[str, Any]]:
        """The events by id, each once; fails if two deliveries of one id differ."""
        by_id: dict[str, dict[str, Any]] = {}
        for event in self.received:
            first = by_id.setdefault(event["id"], event)
            assert first == event, f"two different events with id {event['id']}"
        return by_id

    def kinds(self, channel: str | None = None) -> Counter[tuple[str, str | None]]:
        """How many unique events of each (type, user), on ``channel`` when given."""
        return Counter(
            (e["type"], e["user"])
            for e in self.unique().values()
            if channel is None or e["channel"] == channel
        )

    def sequence(self, channel: str) -> list[tuple[str, str | None]]:
        """The unique events of ``channel`` as (type, user), in the order first received."""
        return [(e["type"], e["user"]) for e in self.unique().values() if e["channel"] == channel]

    async def has(self, count: int, timeout: float = 20.0, channel: str | None = None) -> None:
        """Wait until ``count`` unique events (on ``channel``) arrived."""

        def enough() -> bool:
            return sum(self.kinds(channel).values()) >= count

        try:
            await until(enough, timeout, f"{count} events")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; received: {self.sequence_all()}") from None

    def sequence_all(self) -> list[tuple[str, str, str | None, str]]:
        """Every unique event as (channel, type, user, process), in the order first received."""
        return [(e["channel"], e["type"], e["user"], e["process"]) for e in self.unique().values()]
