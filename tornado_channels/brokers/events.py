"""Where lifecycle events wait until the backend has them: the log, and its memory kind.

Events (subscribe, unsubscribe, join, leave, connect, disconnect) are
appended to an :class:`EventLog` in order; a sender (web/events.py) reads a
partition's oldest ones, delivers them, and acknowledges them, which removes
them.  A partition is read by one sender at a time, the holder of its lease,
so the events of one name (they all go to the partition of its first
segment) reach the backend in the order they were appended.  Until then a
partition keeps at most ``max_backlog`` events: past it the oldest are
dropped, counted and logged.

:class:`MemoryEventLog` is the embedded broker's: one partition in this
process, its lease always held.  The Redis one is in redis_events.py.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass

log = logging.getLogger("tornado_channels.events")

#: Undelivered events a partition keeps, by default, before it drops the oldest.
MAX_BACKLOG = 100_000
#: Seconds a lease lasts unless renewed, by default.
LEASE = 3.0
#: Seconds between two logs of dropped events, at least.
LOG_EVERY = 60.0
#: Events per batch a sender posts, at most.
BATCH = 100

#: The event types.
SUBSCRIBE, UNSUBSCRIBE = "subscribe", "unsubscribe"
CONNECT, DISCONNECT = "connect", "disconnect"


@dataclass(frozen=True, slots=True)
class Event:
    """One stored event: its id (unique, the same on every redelivery) and its JSON body."""

    id: str
    body: bytes

    def as_json(self) -> dict[str, object]:
        """The event as the backend receives it: the stored fields and its id first."""
        fields: dict[str, object] = json.loads(self.body)
        return {"id": self.id, **fields}


def process_id() -> str:
    """A name for this process, unique across the deployment: host, pid, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def encode(kind: str, name: str, user: str | None, process: str) -> bytes:
    """An event's stored body (its id is given by where it is stored)."""
    body = {
        "type": kind,
        "channel": name,
        "user": user,
        "time": round(time.time(), 3),
        "process": process,
    }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


class EventLog(abc.ABC):
    """Undelivered events in partitions, each read in order by its lease holder.

    Counters (plain ints, read by web/metrics.py): :attr:`dropped` events
    this process saw dropped for the backlog cap, :attr:`delivered` events
    it delivered.
    """

    #: Whether stored events outlive this process (then a stopping sender need not wait).
    durable = False

    def __init__(self, partitions: int, max_backlog: int, process: str) -> None:
        if max_backlog < 1:
            raise ValueError("--events-max-backlog must be at least 1")
        self.partitions = partitions
        self.max_backlog = max_backlog
        #: Who appends (the ``process`` field of its events).
        self.process = process
        self.dropped = 0
        self.delivered = 0
        #: Seconds a partition's lease lasts unless renewed.
        self.lease = LEASE
        self._unlogged = 0
        self._logged_at = -LOG_EVERY
        self._wakes = [asyncio.Event() for _ in range(partitions)]

    def emit(self, kind: str, name: str, user: str | None) -> None:
        """Append a ``kind`` event of this process on ``name`` (a channel or subtree)."""
        self.append(self.partition_of(name), encode(kind, name, user, self.process))

    def count_dropped(self, count: int) -> None:
        """``count`` of the oldest undelivered events were dropped for the cap: say so."""
        if count <= 0:
            return
        self.dropped += count
        self._unlogged += count
        now = time.monotonic()
        # Once per LOG_EVERY seconds at most: a backend down for an hour is one line a minute.
        if now - self._logged_at >= LOG_EVERY:
            log.warning(
                "dropped the %d oldest undelivered events: more than %d waiting "
                "(is the events backend down?)",
                self._unlogged,
                self.max_backlog,
            )
            self._logged_at, self._unlogged = now, 0

    def wake(self, partition: int) -> None:
        """Events were appended to ``partition``: its sender need not wait for its poll."""
        self._wakes[partition].set()

    async def wait(self, partition: int, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for events appended here to ``partition``."""
        wake = self._wakes[partition]
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout)
        wake.clear()

    @abc.abstractmethod
    def partition_of(self, name: str) -> int:
        """The partition of ``name``'s events (that of its first segment)."""

    @abc.abstractmethod
    def append(self, partition: int, body: bytes) -> None:
        """Append an event (never blocks; it is stored soon, in order)."""

    @abc.abstractmethod
    async def hold(self, partition: int) -> bool:
        """Take or renew ``partition``'s lease; whether this process holds it now."""

    @abc.abstractmethod
    async def read(self, partition: int, count: int) -> list[Event]:
        """The oldest ``count`` (at most) undelivered events of ``partition``, in order."""

    @abc.abstractmethod
    async def ack(self, partition: int, last: Event) -> bool:
        """Remove every event up to ``last`` (delivered); False if the lease was lost first."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Return once what was appended is stored (or, with the store down, after a while)."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Give up the leases this process holds (its sender has stopped)."""


class MemoryEventLog(EventLog):
    """The embedded broker's events: one ordered queue in this process, capped."""

    def __init__(self, max_backlog: int = MAX_BACKLOG, process: str | None = None) -> None:
        super().__init__(1, max_backlog, process or process_id())
        self._queue: deque[tuple[int, bytes]] = deque()
        self._seq = 0
        # Ids stay unique across restarts of the process: its random part leads them.
        self._prefix = secrets.token_hex(6)

    def partition_of(self, name: str) -> int:
        """Everything is in the one partition."""
        return 0

    def append(self, partition: int, body: bytes) -> None:
        """Queue it, dropping the oldest when the queue is full."""
        self._seq += 1
        self._queue.append((self._seq, body))
        excess = len(self._queue) - self.max_backlog
        for _ in range(excess):
            self._queue.popleft()
        self.count_dropped(excess)
        self.wake(partition)

    def __len__(self) -> int:
        return len(self._queue)

    async def hold(self, partition: int) -> bool:
        """Always: this process is the whole deployment."""
        return True

    async def read(self, partition: int, count: int) -> list[Event]:
        """The oldest ``count`` queued."""
        taken = [self._queue[i] for i in range(min(count, len(self._queue)))]
        return [Event(f"{self._prefix}-{seq}", body) for seq, body in taken]

    async def ack(self, partition: int, last: Event) -> bool:
        """Forget every queued event up to ``last`` (some may have been dropped meanwhile)."""
        seq = int(last.id.rsplit("-", 1)[1])
        queue = self._queue
        while queue and queue[0][0] <= seq:
            queue.popleft()
        return True

    async def flush(self) -> None:
        """Stored as soon as appended."""

    async def stop(self) -> None:
        """No lease to give up."""


__all__ = [
    "BATCH",
    "CONNECT",
    "DISCONNECT",
    "MAX_BACKLOG",
    "SUBSCRIBE",
    "UNSUBSCRIBE",
    "Event",
    "EventLog",
    "MemoryEventLog",
    "encode",
    "process_id",
]
