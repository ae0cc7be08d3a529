"""Presence in Redis: each process's tally, published in batches, summed per partition.

Each process writes only what changed, a while after it changed (debounced,
so a burst of joins is one script call per partition, in chunks), and
renews its deadline every third of the TTL.  A process that stops renewing
(it died) stops counting at its deadline: the next call of presence.lua by
any process subtracts it.  A process Redis does not know (a Redis that
restarted empty, or a process that stalled past its deadline and was
subtracted) sends its whole tally again.  Names live in their partition:
a channel's and a subtree's in the partition of their first segment, the
root's in partition 0, so a subtree other than the root is read from one
partition; the root from all of them, merged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from importlib import resources
from typing import Any, Protocol

from ..core.channels import Subtree, Target
from ..core.presence import (
    MAX_USERS,
    ChannelPresence,
    PresenceTally,
    SubtreePresence,
    decode_value,
    merge_pages,
    page,
    prefix_of,
    presence_name,
    start_after,
)
from .base import BrokerUnavailable
from .keys import KeyLayout
from .presence import PresenceStore
from .redis_history import LuaScript, Run

log = logging.getLogger("tornado_channels.presence")


class Subscriptions(Protocol):
    """Pub/sub keys by partition: the broker's links (links.py)."""

    def acquire(self, partition: int, keys: Sequence[bytes]) -> None:
        """Take ``keys`` on ``partition``'s link."""
        ...

    def release(self, partition: int, keys: Sequence[bytes]) -> None:
        """Release ``keys`` on ``partition``'s link."""
        ...

    async def confirm(self, partition: int, keys: Sequence[bytes]) -> bool | None:
        """Wait for Redis to confirm ``keys``: True, or False/None (lost, or too slow)."""
        ...


PRESENCE_SCRIPT = (resources.files(__package__) / "presence.lua").read_bytes()
#: What a join or leave begins with (presence.lua's JSON object): a message
#: on a link is either that or a publication's envelope, which begins with its
#: version digit (publication.py), so the first byte tells them apart.
PRESENCE_EVENT = b"{"
#: Seconds a stopping process spends withdrawing its tally before it gives up.
WITHDRAW_TIMEOUT = 2.0
#: Seconds between a change and its publication: a burst of joins is one write.
DEBOUNCE = 0.25
#: Names per script call: each call stays short, however many changed at once.
CHUNK = 500


class RedisPresence(PresenceStore):
    """Presence of every process that shares a Redis (standalone, Sentinel or Cluster).

    :param run: runs a coroutine on a partition's master (the broker's
        ``_reading``: Redis errors become ``BrokerUnavailable``).
    """

    def __init__(
        self,
        tally: PresenceTally,
        layout: KeyLayout,
        node: bytes,
        run: Run,
        *,
        ttl: float,
        sharded: bool = False,
        subscriptions: Subscriptions | None = None,
    ) -> None:
        super().__init__(tally)
        self.layout = layout
        self.node = node
        self.ttl = ttl
        self._run = run
        self._command = "SPUBLISH" if sharded else "PUBLISH"
        # Subscribing to a name's joins and leaves: the broker's links.
        self._subscriptions = subscriptions
        self._script = LuaScript(PRESENCE_SCRIPT)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Every name must be sent again (Redis forgot this process, or never knew it).
        self._resend = True
        #: Above 0, presence.lua also appends joins and leaves to the partition's
        #: events stream (see redis_events.py), keeping at most this many there.
        self.events_cap = 0

    async def _call(self, partition: int, args: Sequence[Any]) -> Any:
        keys = self.layout.presence(partition)
        full = [args[0], self._command, self.events_cap, *args[1:]]
        return await self._run(partition, lambda client: self._script.run(client, keys, full, None))

    # Joins and leaves

    def events_key(self, name: str) -> tuple[int, bytes]:
        """The partition and pub/sub channel of ``name``'s joins and leaves."""
        partition = self.layout.presence_partition(name)
        return partition, self.layout.presence_events(partition) + name.encode("utf-8")

    def watch(self, name: str) -> None:
        """Subscribe to the joins and leaves presence.lua publishes for ``name``."""
        if self._subscriptions is not None:
            self._subscriptions.acquire(*self._one(name))

    async def confirm_watch(self, name: str) -> None:
        """Wait for Redis to acknowledge that subscription, as for a channel's."""
        if self._subscriptions is None:
            return
        partition, keys = self._one(name)
        if not await self._subscriptions.confirm(partition, keys):
            raise BrokerUnavailable("Redis did not confirm the subscription to joins and leaves")

    def unwatch(self, name: str) -> None:
        """Unsubscribe from them."""
        if self._subscriptions is not None:
            self._subscriptions.release(*self._one(name))

    def _one(self, name: str) -> tuple[int, list[bytes]]:
        partition, key = self.events_key(name)
        return partition, [key]

    def moved(self, name: str, kind: str, user: str) -> None:
        """Nothing: Redis knows when a user's first or last process comes or goes."""

    def received(self, data: bytes) -> None:
        """A join or leave from Redis: hand it to the listener (malformed ones are logged)."""
        try:
            event = json.loads(data)
            name, kind, user = event["channel"], event["presence"], event["user"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed presence event: %r", data[:200])
            return
        self.notify(str(name), str(kind), str(user))

    # Publishing this process's tally

    async def start(self) -> None:
        """Publish in the background: once now, then on change and every third of the TTL."""
        self._task = asyncio.ensure_future(self._beat_forever())

    async def stop(self) -> None:
        """Stop publishing and withdraw this process from every partition."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            # Bounded: with Redis (or every Sentinel) unreachable, a shutdown
            # would otherwise wait on the client's own retries.
            await asyncio.wait_for(
                asyncio.gather(*(self._leave(p) for p in range(self.layout.partitions))),
                WITHDRAW_TIMEOUT,
            )
        except (BrokerUnavailable, asyncio.TimeoutError) as exc:
            # Redis drops it at its deadline anyway.
            log.debug("withdrawing presence failed: %r", exc)

    async def _leave(self, partition: int) -> None:
        # A thousand entries per call; bounded, should Redis keep refusing the last.
        for _ in range(10_000):
            if await self._call(partition, ["leave", self.node]):
                return

    def changed(self) -> None:
        """Publish what changed after :data:`DEBOUNCE` seconds."""
        self._wake.set()

    async def _beat_forever(self) -> None:
        while True:
            try:
                await self.beat()
            except BrokerUnavailable as exc:
                log.debug("publishing presence failed: %s", exc)
            except Exception:
                log.exception("publishing presence failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.ttl / 3)
                await asyncio.sleep(DEBOUNCE)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def beat(self) -> None:
        """Send what changed (everything, if Redis does not know this process) and renew."""
        tally = self.tally
        names = tally.names() if self._resend else tally.take_changes()
        if self._resend:
            tally.take_changes()
        by_partition: dict[int, list[str]] = defaultdict(list)
        for name in names:
            by_partition[self.layout.presence_partition(name)].append(name)
        everything = self._resend
        try:
            results = await asyncio.gather(
                *(
                    self._beat_partition(p, by_partition.get(p, []))
                    for p in range(self.layout.partitions)
                )
            )
        except BaseException:
            # Not (all) sent: send them again next time.
            if everything:
                self._resend = True
            else:
                tally.restore(names)
            raise
        self._resend = not everything and not all(results)
        if self._resend:
            log.info("Redis did not know this process's presence: sending all of it")
            self._wake.set()

    async def _beat_partition(self, partition: int, names: list[str]) -> bool:
        """Send ``names`` in chunks; whether the partition knew this process before."""
        known = True
        ttl = int(self.ttl * 1000)
        chunks = [names[i : i + CHUNK] for i in range(0, len(names), CHUNK)] or [[]]
        for chunk in chunks:
            args: list[Any] = ["beat", self.node, ttl]
            for name in chunk:
                args += [name, self.tally.value(name)]
            known = bool(await self._call(partition, args)) and known
        return known

    # Queries

    async def channel(self, target: Target) -> ChannelPresence:
        """One name's total, and the users every live process lists for it."""
        name = presence_name(target)
        total, *values = await self._call(self.layout.presence_partition(name), ["channel", name])
        users: set[str] = set()
        for value in values:
            users.update(decode_value(value.decode("utf-8"))[1])
        return ChannelPresence(name, int(total), sorted(users)[:MAX_USERS])

    async def below(self, subtree: Subtree, cursor: str | None, limit: int) -> SubtreePresence:
        """A page of names at and below ``subtree`` (every partition's, merged, for the root)."""
        prefix = prefix_of(subtree)
        after = start_after(prefix, cursor) or ""
        partitions: Sequence[int] = (
            range(self.layout.partitions) if not prefix else (self.layout.home(subtree),)
        )
        args = ["below", prefix, after, limit + 1]
        answers = await asyncio.gather(*(self._call(p, args) for p in partitions))
        total = 0
        pages = []
        for answer in answers:
            total += int(answer[0])
            rest = answer[1:]
            pages.append(
                [(rest[i].decode("utf-8"), int(rest[i + 1])) for i in range(0, len(rest), 2)]
            )
        return page(str(subtree), total, merge_pages(pages), limit)
