"""Lifecycle events in Redis: a stream per partition, delivered by one lease holder each.

A process appends its own events (subscribe, unsubscribe, connect,
disconnect) in the background, a pass of the loop's worth per script call,
in order; presence.lua appends joins and leaves itself, in the same script
call that counts them, so the leave of a user whose last process died is
written by whichever live process subtracts the dead one.  Each partition's
stream is read by the holder of its lease (``SET NX PX``, renewed every
third of its life; a dead holder's lease expires and a live process takes
it), which deletes what the backend acknowledged: the stream's first entry
is always the oldest undelivered event.  Entry ids are the events' ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from importlib import resources
from typing import Any

from .base import BrokerUnavailable
from .events import Event, EventLog
from .keys import KeyLayout
from .redis_history import LuaScript, Run

log = logging.getLogger("tornado_channels.events")

EVENTS_SCRIPT = (resources.files(__package__) / "events.lua").read_bytes()
#: Events per append call: each call stays short.
CHUNK = 500
#: Seconds between attempts to store buffered events while Redis refuses them, at most.
RETRY_CAP = 1.0
#: Seconds a stopping process spends storing what it still buffers.
STOP_TIMEOUT = 2.0


class RedisEventLog(EventLog):
    """Events of every process sharing a Redis, in ``layout``'s partitions.

    :param run: runs a coroutine on a partition's master (the broker's
        ``_reading``: Redis errors become ``BrokerUnavailable``).
    :param lease: seconds a partition's lease lasts unless renewed.
    """

    durable = True

    def __init__(
        self, layout: KeyLayout, process: str, run: Run, *, max_backlog: int, lease: float
    ) -> None:
        super().__init__(layout.partitions, max_backlog, process)
        self.layout = layout
        self.lease = lease
        self._run = run
        self._script = LuaScript(EVENTS_SCRIPT)
        self._buffered: list[list[bytes]] = [[] for _ in range(layout.partitions)]
        self._flushing: asyncio.Task[None] | None = None
        self._stopped = False

    async def _call(self, partition: int, args: list[Any]) -> Any:
        keys = self.layout.events(partition)
        return await self._run(partition, lambda client: self._script.run(client, keys, args, None))

    def partition_of(self, name: str) -> int:
        """Where presence counts ``name``: joins and leaves are written there too."""
        return self.layout.presence_partition(name)

    def append(self, partition: int, body: bytes) -> None:
        """Buffer it; stored with the rest of this pass's in one call (in order)."""
        if self._stopped:
            # Past the shutdown (a late disconnect): the broker is going away.
            log.debug("an event after the events log stopped is not stored")
            return
        buffered = self._buffered[partition]
        buffered.append(body)
        excess = len(buffered) - self.max_backlog
        if excess > 0:
            # Redis has been refusing for a while: the cap holds here too.
            del buffered[:excess]
            self.count_dropped(excess)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        delay = 0.05
        while any(self._buffered):
            try:
                for partition, buffered in enumerate(self._buffered):
                    while buffered:
                        chunk = buffered[:CHUNK]
                        await self._call(partition, ["append", self.max_backlog, *chunk])
                        # Appended meanwhile stays: only what was sent goes.
                        del buffered[: len(chunk)]
                        self.wake(partition)
                delay = 0.05
            except BrokerUnavailable as exc:
                log.debug("storing events failed, retrying: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_CAP)

    async def flush(self) -> None:
        """Store what is buffered; after :data:`STOP_TIMEOUT` seconds, give up (logged)."""
        if self._flushing is None or self._flushing.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._flushing), STOP_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning("stopping with %d events not stored", sum(map(len, self._buffered)))
            self._flushing.cancel()

    async def stop(self) -> None:
        """Give up every lease this process holds: another takes the partition at once."""
        self._stopped = True
        if self._flushing is not None:
            self._flushing.cancel()
        for partition in range(self.partitions):
            with contextlib.suppress(BrokerUnavailable):  # Or it expires.
                await self._call(partition, ["release", self.process])

    async def hold(self, partition: int) -> bool:
        """Take or renew the lease; the holder collects the count of dropped events."""
        held, dropped = await self._call(
            partition, ["hold", self.process, max(1, int(self.lease * 1000))]
        )
        self.count_dropped(int(dropped))
        return bool(held)

    async def read(self, partition: int, count: int) -> list[Event]:
        """The stream's first ``count`` entries: the oldest undelivered."""
        stream = self.layout.events(partition)[0]
        entries = await self._run(partition, lambda client: client.xrange(stream, count=count))
        prefix = b"%d-" % partition
        return [
            Event((prefix + entry_id).decode("ascii"), fields[b"e"]) for entry_id, fields in entries
        ]

    async def ack(self, partition: int, last: Event) -> bool:
        """Delete the stream's entries up to ``last`` if this process still holds the lease."""
        entry_id = last.id.split("-", 1)[1]
        return bool(await self._call(partition, ["ack", self.process, entry_id]))


__all__ = ["RedisEventLog"]
