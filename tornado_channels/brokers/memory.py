"""The embedded in-memory broker: a complete single-process transport."""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

from ..core.channels import Channel
from ..core.history import HISTORY_AGE, HISTORY_SIZE, MemoryHistory, channel_keys, stream_key
from ..core.publication import Position, Publication, Recovery, decode, encode
from .base import Broker, BrokerEvents, BrokerUnavailable


class MemoryBroker(Broker):
    """Delivers every publication straight back to its own node.

    Used when no Redis URL is configured.  It has no connection to lose, so it
    is connected from :meth:`start` until :meth:`stop`.
    """

    kind = "memory"

    def __init__(
        self, *, history_size: int = HISTORY_SIZE, history_age: float = HISTORY_AGE
    ) -> None:
        self._events: BrokerEvents | None = None
        # A new epoch per process: its history dies with it.
        self.history = MemoryHistory(secrets.token_hex(4), history_size, history_age)

    async def start(self, events: BrokerEvents) -> None:
        """Connected at once: there is nothing to connect to."""
        self._events = events
        events.broker_state_changed(True)

    async def stop(self) -> None:
        """Stop delivering; publishes fail from now on."""
        events, self._events = self._events, None
        if events is not None:
            events.broker_state_changed(False)

    @property
    def connected(self) -> bool:
        """True between start and stop."""
        return self._events is not None

    async def publish(self, publication: Publication) -> Position:
        """Record, then hand to this process's node before returning."""
        return self._publish(publication, time.monotonic())

    async def publish_many(self, publications: Sequence[Publication]) -> list[Position]:
        """Record and hand over each, in order, with no pause between them."""
        now = time.monotonic()
        positions = [self._publish(publication, now, False) for publication in publications]
        self.history.prune(now, len(positions))
        return positions

    def _publish(self, publication: Publication, now: float, prune: bool = True) -> Position:
        if self._events is None:
            raise BrokerUnavailable("the memory broker is stopped")
        position = self.history.next_position()
        stamped = Publication(publication.target, publication.payload, position)
        self.history.store(stream_key(publication.target), position, encode(stamped), now, prune)
        self._events.received(stamped)
        return position

    async def head(self) -> Position:
        """The latest position in this process's history."""
        return Position(self.history.epoch, self.history.seq)

    async def recover(self, channel: Channel, since: Position) -> Recovery:
        """From this process's history."""
        entries, gap = self.history.recover(channel_keys(channel), since, time.monotonic())
        return Recovery([decode(entry.data) for entry in entries], not gap, gap)

    def subscribe(self, channel: Channel) -> None:
        """Nothing to do: every publication reaches the node, and the hub filters by channel."""

    async def confirm(self, channel: Channel) -> None:
        """In effect at once while started."""
        if self._events is None:
            raise BrokerUnavailable("the memory broker is stopped")

    def unsubscribe(self, channel: Channel) -> None:
        """Nothing to undo."""
