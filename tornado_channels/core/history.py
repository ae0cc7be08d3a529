"""Positions in the message history, and recovery from one (pure, no I/O).

Every publication gets a position ``<epoch>:<seq>``.  ``seq`` comes from one
counter per history partition (see partitions.py; one partition unless the
broker is a Redis Cluster), so positions order every publication of a
partition, whichever channel or subtree it went to: a subscriber of
``users/1`` recovers messages to ``users/1``, ``users/`` and ``/`` merged in
publish order.  ``epoch`` names the life of that counter (see
publication.py): when history may have been lost (a Redis restarted without
persistence, or a replica promoted), the epoch changes and old positions can
no longer be recovered from, which a client is told.

Memory stays bounded by what is live (docs/performance.md): a stream keeps
its last ``size`` entries and disappears once nobody has published to it for
``age``.  What a vanished stream held is still accounted for: the
*watermark* is the oldest position published within ``age``, and a resume
from before it is only trusted where a live stream proves it complete.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .channels import Channel, Subtree, Target
from .publication import Position

#: Messages kept per channel (and per subtree) by default.
HISTORY_SIZE = 100
#: Seconds a message stays recoverable by default.
HISTORY_AGE = 300.0


def check_history(size: int, age: float) -> None:
    """Raise ValueError for a history that could keep nothing (every broker checks it)."""
    if size < 1:
        raise ValueError(f"--history-size must be at least 1 message, not {size}")
    if not age > 0:
        raise ValueError(f"--history-age must be more than 0 seconds, not {age}")


#: Seconds an idle stream outlives its age: clocks tick in whole milliseconds
#: and a failover may move a partition to a master whose clock differs slightly.
STREAM_GRACE = 1.0
#: Idle streams dropped per append, at most: pruning stays O(1) per publish.
_PRUNE_PER_APPEND = 4
#: Seconds between sweeps of idle streams nobody publishes after (see MemoryHistory.sweep).
SWEEP_INTERVAL = 1.0

#: The reason given when a position is from another epoch.
LOST = "the history was lost (a new epoch began)"
#: ... when a stream no longer holds the messages after the position.
TRIMMED = "the history no longer reaches that position"
#: ... when messages after the position are older than the history age.
EXPIRED = "messages after that position have expired"
#: ... when the position is older than the history age and no stream vouches for it.
TOO_OLD = "that position is older than the history age"
#: ... when the position is ahead of the history.
FUTURE = "that position is in the future"


def stream_key(target: Target) -> bytes:
    """The key of the stream (and pub/sub channel) a publication to ``target`` goes to."""
    if isinstance(target, Channel):
        return b"c:" + target.name.encode("utf-8")
    return b"t:" + target.prefix.encode("utf-8")


def channel_keys(channel: Channel) -> list[bytes]:
    """Every key whose publications reach ``channel``: its own and its subtrees'."""
    return [stream_key(channel), *(stream_key(Subtree(prefix)) for prefix in channel.ancestors())]


def above_keys(subtree: Subtree) -> list[bytes]:
    """The keys of the subtrees strictly above ``subtree`` (the root's, unless it is the root)."""
    if not subtree.prefix:
        return []
    return [stream_key(Subtree(prefix)) for prefix in Channel(subtree.prefix).ancestors()]


def below(key: bytes, subtree: Subtree) -> bool:
    """Whether publications under ``key`` reach only channels below ``subtree``."""
    prefix = subtree.prefix.encode("utf-8")
    if not prefix:
        return True
    name = key[2:]
    if key.startswith(b"t:") and name == prefix:
        return True
    return name.startswith(prefix + b"/")


@dataclass(frozen=True, slots=True)
class Entry:
    """One stored publication: its sequence number, when it was stored, its wire bytes."""

    seq: int
    stored_at: float
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamView:
    """What one stream holds, as read for a recovery.

    ``floor`` is the highest number the stream may have dropped while it
    lived (None if it never dropped one); ``oldest`` the oldest number it
    holds (None when the stream does not exist, or no longer does).
    """

    entries: Sequence[Entry]
    floor: int | None
    oldest: int | None


#: Why a recovery cannot be complete, when it cannot; "" when it can.
Gap = str


def watermark(marks: Iterable[tuple[float, int]], now: float, max_age: float, next_seq: int) -> int:
    """The lowest number that may have been published within ``max_age`` of ``now``.

    ``marks`` are ``(second, first number published in that second)``, oldest
    first.  Every number from the result on was published within the age;
    those below may be older (``next_seq`` when nothing is recent).
    """
    for second, seq in marks:
        if second >= now - max_age:
            return seq
    return next_seq


def merge(
    streams: Iterable[StreamView], since: int, now: float, max_age: float, low: int
) -> tuple[list[Entry], Gap]:
    """Merge the entries after ``since`` from several streams, in publish order.

    ``low`` is the :func:`watermark`.  A stream that may have dropped entries
    after ``since`` fails the recovery; so does one that cannot prove it
    existed since ``since`` (it may have vanished and been made again) when
    ``since`` is older than the watermark, since a vanished stream's messages
    are all older than that.  Entries older than ``max_age`` count as gone.
    Returns the entries, and why they are not all of them ("" when they are).
    """
    found: list[Entry] = []
    for view in streams:
        if view.floor is not None:
            if since < view.floor:
                return [], TRIMMED
        elif (view.oldest is None or since < view.oldest - 1) and since + 1 < low:
            return [], TOO_OLD
        for entry in view.entries:
            if entry.seq <= since:
                continue
            if now - entry.stored_at > max_age:
                return [], EXPIRED
            found.append(entry)
    found.sort(key=lambda entry: entry.seq)
    return found, ""


@dataclass
class _Stream:
    entries: deque[Entry] = field(default_factory=deque)
    floor: int | None = None


@dataclass
class MemoryHistory:
    """History kept in this process, for the memory broker: a capped deque per key.

    It follows the same rules as the Redis history, so both answer a
    recovery alike: streams keep ``max_size`` entries and are dropped once
    idle for the age (a few on each publish, the rest by :meth:`sweep`);
    the marks behind the watermark cover the age.
    """

    epoch: str
    max_size: int = HISTORY_SIZE
    max_age: float = HISTORY_AGE
    seq: int = 0
    # In order of last append, so the idlest stream is always first.
    _streams: OrderedDict[bytes, _Stream] = field(default_factory=OrderedDict)
    # (second, first seq stored in it), oldest first, within the age.
    _marks: deque[tuple[float, int]] = field(default_factory=deque)

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
        second = float(int(now))
        if not self._marks or self._marks[-1][0] != second:
            self._marks.append((second, position.seq))
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream()
        else:
            self._streams.move_to_end(key)
        entries = stream.entries
        entries.append(Entry(position.seq, now, data))
        while len(entries) > self.max_size or now - entries[0].stored_at > self.max_age:
            stream.floor = entries.popleft().seq
        if prune:
            self.prune(now)

    def prune(self, now: float, stored: int = 1) -> None:
        """Drop a few streams nobody has published to for the age (more after ``stored`` stores).

        They hold only expired entries: without this every channel ever used
        would stay in memory.  What they held is older than the watermark.
        """
        marks = self._marks
        while len(marks) > 1 and marks[1][0] < now - self.max_age:
            marks.popleft()
        for _ in range(_PRUNE_PER_APPEND * stored):
            if not self._streams:
                return
            key, stream = next(iter(self._streams.items()))
            if now - stream.entries[-1].stored_at <= self.max_age + STREAM_GRACE:
                return
            del self._streams[key]

    def sweep(self, now: float) -> int:
        """Drop every stream idle past the age (plus grace), and the marks older than it.

        :meth:`prune` frees a few per publish, so a burst of channels that
        are never published to again would stay until as many publishes
        came after it; a periodic sweep frees them without one.  The
        idlest streams are first, so the cost is one step per stream dropped.
        Returns how many were dropped.
        """
        self.prune(now, 0)
        streams = self._streams
        dropped = 0
        while streams:
            key, stream = next(iter(streams.items()))
            if now - stream.entries[-1].stored_at <= self.max_age + STREAM_GRACE:
                break
            del streams[key]
            dropped += 1
        return dropped

    def marks(self) -> int:
        """Marks held (one per second with publishes, within the age; for tests)."""
        return len(self._marks)

    def __len__(self) -> int:
        """Streams held (for tests of the memory bound)."""
        return len(self._streams)

    def keys_below(self, subtree: Subtree) -> list[bytes]:
        """The live streams whose publications reach only channels below ``subtree``."""
        return [key for key in self._streams if below(key, subtree)]

    def recover(
        self, keys: Iterable[bytes], since: Position, now: float, incomplete: bool = False
    ) -> tuple[list[Entry], Gap]:
        """Everything after ``since`` under ``keys``, and why it is not all ("" when it is).

        ``incomplete``: ``keys`` may lack streams that vanished (a subtree's,
        found among the live ones), so the position must be within the
        watermark.
        """
        if since.epoch != self.epoch:
            return [], LOST
        if since.seq > self.seq:
            return [], FUTURE
        views = [StreamView((), None, None)] if incomplete else []
        for key in keys:
            stream = self._streams.get(key)
            if stream is None:
                views.append(StreamView((), None, None))
            else:
                views.append(StreamView(stream.entries, stream.floor, stream.entries[0].seq))
        low = watermark(self._marks, now, self.max_age, self.seq + 1)
        return merge(views, since.seq, now, self.max_age, low)
