"""Positions in the message history, and recovery from one (pure, no I/O).

Every publication gets a position ``<epoch>:<seq>``.  ``seq`` comes from one
counter per broker (one Redis, or one process), so positions order every
publication, whichever channel or subtree it went to: a subscriber of
``users/1`` recovers messages to ``users/1``, ``users/`` and ``/`` merged in
publish order.  ``epoch`` names the life of that counter (see publication.py):
when history is lost (a Redis restarted without persistence), the epoch
changes and old positions can no longer be recovered from, which a client is
told.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from .channels import Channel, Subtree, Target
from .publication import Position

#: Messages kept per channel (and per subtree) by default.
HISTORY_SIZE = 100
#: Seconds a message stays recoverable by default.
HISTORY_AGE = 300.0
#: Idle streams dropped per append, at most: pruning stays O(1) per publish.
_PRUNE_PER_APPEND = 4

#: The reason given when a position is from another epoch.
LOST = "the history was lost (a new epoch began)"


def stream_key(target: Target) -> bytes:
    """The key of the stream (and pub/sub channel) a publication to ``target`` goes to."""
    if isinstance(target, Channel):
        return b"c:" + target.name.encode("utf-8")
    return b"t:" + target.prefix.encode("utf-8")


def channel_keys(channel: Channel) -> list[bytes]:
    """Every key whose publications reach ``channel``: its own and its subtrees'."""
    return [stream_key(channel), *(stream_key(Subtree(prefix)) for prefix in channel.ancestors())]


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored publication: its sequence number, when it was stored, its wire bytes."""

    seq: int
    stored_at: float
    data: bytes


#: Why a recovery cannot be complete, when it cannot; "" when it can.
Gap = str


def merge(
    streams: Iterable[tuple[list[Entry], int]],
    since: int,
    now: float,
    max_age: float,
) -> tuple[list[Entry], Gap]:
    """Merge the entries after ``since`` from several streams, in publish order.

    Each stream comes with its *floor*: the highest sequence number it no
    longer holds.  Entries older than ``max_age`` count as gone.  Returns the
    entries, and why they are not all of them ("" when they are).
    """
    found: list[Entry] = []
    for entries, floor in streams:
        if floor > since:
            return [], "the history no longer reaches that position"
        for entry in entries:
            if entry.seq <= since:
                continue
            if now - entry.stored_at > max_age:
                return [], "messages after that position have expired"
            found.append(entry)
    found.sort(key=lambda entry: entry.seq)
    return found, ""


@dataclass
class MemoryHistory:
    """History kept in this process, for the memory broker: a capped deque per key."""

    epoch: str
    max_size: int = HISTORY_SIZE
    max_age: float = HISTORY_AGE
    seq: int = 0
    # In order of last append, so the idlest stream is always first.
    _streams: OrderedDict[bytes, deque[Entry]] = field(default_factory=OrderedDict)
    _floors: dict[bytes, int] = field(default_factory=dict)

    def next_position(self) -> Position:
        """The position the next stored entry gets."""
        return Position(self.epoch, self.seq + 1)

    def store(
        self, key: bytes, position: Position, data: bytes, now: float, prune: bool = True
    ) -> None:
        """Store ``data`` at ``position`` (from :meth:`next_position`) under ``key``.

        ``prune=False`` leaves pruning idle streams to a later :meth:`prune`
        (once for a whole batch).
        """
        self.seq = position.seq
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = deque()
        else:
            self._streams.move_to_end(key)
        stream.append(Entry(position.seq, now, data))
        while len(stream) > self.max_size or (stream and now - stream[0].stored_at > self.max_age):
            self._floors[key] = stream.popleft().seq
        if prune:
            self.prune(now)

    def prune(self, now: float, stored: int = 1) -> None:
        """Drop a few streams nobody has published to for max_age (more after ``stored`` stores).

        They hold only expired entries: without this every channel ever used
        would stay in memory.  Their last number is kept as their floor, so a
        resume from before it fails loudly.
        """
        for _ in range(_PRUNE_PER_APPEND * stored):
            key, stream = next(iter(self._streams.items()))
            if stream and now - stream[-1].stored_at <= self.max_age:
                return
            if stream:
                self._floors[key] = stream[-1].seq
            del self._streams[key]
            if not self._streams:
                return

    def recover(
        self, keys: Iterable[bytes], since: Position, now: float
    ) -> tuple[list[Entry], Gap]:
        """Everything after ``since`` under ``keys``, and why it is not all ("" when it is)."""
        if since.epoch != self.epoch:
            return [], LOST
        if since.seq > self.seq:
            return [], "that position is in the future"
        streams = [(list(self._streams.get(key, ())), self._floors.get(key, 0)) for key in keys]
        return merge(streams, since.seq, now, self.max_age)
