"""The embedded in-memory broker: a complete single-process transport."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence

from ..core.channels import Channel, Target
from ..core.history import (
    HISTORY_AGE,
    HISTORY_SIZE,
    SWEEP_INTERVAL,
    MemoryHistory,
    above_keys,
    channel_keys,
    check_history,
    stream_key,
)
from ..core.idempotency import IDEMPOTENCY_TTL, Idempotency
from ..core.publication import Position, Publication, Receipt, Recovery, decode, encode
from .base import Broker, BrokerEvents, BrokerUnavailable, IdempotencyConflict


class MemoryBroker(Broker):
    """Delivers every publication straight back to its own node.

    Used when no Redis URL is configured.  It has no connection to lose, so it
    is connected from :meth:`start` until :meth:`stop`.
    """

    kind = "memory"

    def __init__(
        self,
        *,
        history_size: int = HISTORY_SIZE,
        history_age: float = HISTORY_AGE,
        idempotency_ttl: float = IDEMPOTENCY_TTL,
    ) -> None:
        self._events: BrokerEvents | None = None
        # A new epoch per process: its history dies with it.
        check_history(history_size, history_age)
        self.history = MemoryHistory(secrets.token_hex(4), history_size, history_age)
        self._idempotency_ttl = idempotency_ttl
        # Key -> (expiry, fingerprint, positions), in order of expiry: one TTL
        # for all, so the oldest key is always first and pruning is O(1).
        self._keys: OrderedDict[str, tuple[float, str, list[Position]]] = OrderedDict()
        self._sweeper: asyncio.Task[None] | None = None

    def describe(self) -> str:
        """The embedded broker serves one process."""
        return "memory (embedded, single process)"

    async def start(self, events: BrokerEvents) -> None:
        """Connected at once: there is nothing to connect to."""
        self._events = events
        if self._sweeper is None:
            self._sweeper = asyncio.ensure_future(self._sweep_forever())
        events.broker_state_changed(True)

    async def stop(self) -> None:
        """Stop delivering; publishes fail from now on."""
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        events, self._events = self._events, None
        if events is not None:
            events.broker_state_changed(False)

    @property
    def connected(self) -> bool:
        """True between start and stop."""
        return self._events is not None

    async def publish(
        self, publication: Publication, idempotency: Idempotency | None = None
    ) -> Receipt:
        """Record, then hand to this process's node before returning."""
        return self._publish_all([publication], idempotency)

    async def publish_many(
        self, publications: Sequence[Publication], idempotency: Idempotency | None = None
    ) -> Receipt:
        """Record and hand over each, in order, with no pause between them."""
        return self._publish_all(publications, idempotency)

    def _publish_all(
        self, publications: Sequence[Publication], idempotency: Idempotency | None
    ) -> Receipt:
        if self._events is None:
            raise BrokerUnavailable("the memory broker is stopped")
        now = time.monotonic()
        self._forget(now)
        if idempotency is not None:
            replayed = self._replay(idempotency)
            if replayed is not None:
                return replayed
        positions = [self._publish(publication, now) for publication in publications]
        self.history.prune(now, len(positions))
        if idempotency is not None:
            expires = now + self._idempotency_ttl
            self._keys[idempotency.key] = (expires, idempotency.fingerprint, positions)
        return Receipt(positions)

    async def _sweep_forever(self) -> None:
        """Free what expired even when nothing is published any more (see MemoryHistory.sweep)."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self.sweep(time.monotonic())

    def sweep(self, now: float) -> None:
        """Drop idle streams, old marks and expired idempotency keys, all of them."""
        self.history.sweep(now)
        self._forget(now)

    def _forget(self, now: float) -> None:
        """Drop the keys whose time is up (a few per publish: they expire in order)."""
        keys = self._keys
        while keys:
            oldest = next(iter(keys.values()))
            if oldest[0] > now:
                return
            keys.popitem(last=False)

    def _replay(self, idempotency: Idempotency) -> Receipt | None:
        """What ``idempotency``'s key published, if it is remembered; None if not."""
        remembered = self._keys.get(idempotency.key)
        if remembered is None:
            return None
        if remembered[1] != idempotency.fingerprint:
            raise IdempotencyConflict("the key was used for another publish")
        return Receipt(list(remembered[2]), True)

    def idempotency_keys(self) -> int:
        """Keys remembered now (for tests of the memory bound)."""
        return len(self._keys)

    def _publish(self, publication: Publication, now: float) -> Position:
        assert self._events is not None
        position = self.history.next_position()
        stamped = Publication(publication.target, publication.payload, position)
        self.history.store(stream_key(publication.target), position, encode(stamped), now, False)
        self._events.received(stamped)
        return position

    async def head(self, target: Target) -> Position:
        """The latest position in this process's history (one partition: any target's)."""
        return Position(self.history.epoch, self.history.seq)

    async def recover(self, target: Target, since: Position) -> Recovery:
        """From this process's history: a subtree's from every live stream below it."""
        now = time.monotonic()
        if isinstance(target, Channel):
            entries, gap = self.history.recover(channel_keys(target), since, now)
        else:
            keys = [*self.history.keys_below(target), *above_keys(target)]
            entries, gap = self.history.recover(keys, since, now, incomplete=True)
        return Recovery([decode(entry.data) for entry in entries], not gap, gap)

    def subscribe(self, target: Target) -> None:
        """Nothing to do: every publication reaches the node, and the hub filters by target."""

    async def confirm(self, target: Target) -> None:
        """In effect at once while started."""
        if self._events is None:
            raise BrokerUnavailable("the memory broker is stopped")

    def unsubscribe(self, target: Target) -> None:
        """Nothing to undo."""
