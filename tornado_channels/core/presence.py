"""Presence: who is subscribed where (pure, no I/O).

A process keeps a :class:`PresenceTally` of its own subscriptions, by
*name*: a channel's (``users/1``), a subtree's (``users/``), or the root's
(``/``).  Brokers that span processes publish each process's tally (only
what changed since the last time) and add them up; the memory broker reads
the tally as it is.  Answers are :class:`ChannelPresence` and
:class:`SubtreePresence`, the latter a page of the names below a prefix in
byte order, continued from a cursor (the last name of the page before): a
name present throughout is listed exactly once across pages, however many
come and go meanwhile.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .channels import Target

#: Distinct users listed for one channel (per process, and in an answer).
MAX_USERS = 1000
#: Names per page of a subtree's presence, by default and at most.
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
#: Top-level segments counted apart in metrics; the rest are "other".
MAX_SEGMENTS = 50


def presence_name(target: Target) -> str:
    """The name ``target`` is counted under: ``users/1``, ``users/``, or ``/``."""
    return str(target)


def prefix_of(target: Target) -> str:
    """What every name below a target starts with (empty for the root: everything)."""
    name = str(target)
    return "" if name == "/" else name


def first_segment_of(name: str) -> str:
    """The top-level segment a name is counted under in metrics (``/`` for the root)."""
    if name == "/":
        return "/"
    cut = name.find("/")
    return name if cut < 0 else name[:cut]


def start_after(prefix: str, cursor: str | None) -> str | None:
    """The cursor to continue after, or None to start at ``prefix`` (a cursor before it)."""
    if cursor is None or cursor < prefix:
        return None
    return cursor


def encode_value(count: int, users: Iterable[str]) -> str:
    """One process's entry for a name: its count, then its distinct users, tab-separated.

    A user id that is empty or holds a tab cannot be told apart in that form:
    it counts, but is not listed.
    """
    return "\t".join([str(count), *(user for user in users if user and "\t" not in user)])


def decode_value(value: str) -> tuple[int, list[str]]:
    """The count and users of an entry made by :func:`encode_value`."""
    count, *users = value.split("\t")
    return int(count), users


#: What a presence event says happened: a user's first subscription, or their last one gone.
JOIN = "join"
LEAVE = "leave"


@dataclass(frozen=True, slots=True)
class ChannelPresence:
    """Who is on one name: how many subscriptions, and which users (from tokens' ``sub``)."""

    name: str
    subscribers: int
    users: list[str]

    def as_json(self) -> dict[str, object]:
        """The answer's body."""
        key = "subtree" if self.name.endswith("/") else "channel"
        return {key: self.name, "subscribers": self.subscribers, "users": self.users}


@dataclass(frozen=True, slots=True)
class SubtreePresence:
    """Subscriptions at and below a subtree: the total, and one page of them per name."""

    subtree: str
    subscribers: int
    channels: dict[str, int]
    #: Where the next page starts (pass it as ``?cursor=``), None on the last.
    cursor: str | None

    def as_json(self) -> dict[str, object]:
        """The answer's body."""
        return {
            "subtree": self.subtree,
            "subscribers": self.subscribers,
            "channels": self.channels,
            "cursor": self.cursor,
        }


def page(subtree: str, total: int, names: Iterable[tuple[str, int]], limit: int) -> SubtreePresence:
    """A page from names in order (``limit + 1`` of them tell whether there is more)."""
    taken = list(itertools.islice(names, limit + 1))
    more = len(taken) > limit
    taken = taken[:limit]
    cursor = taken[-1][0] if more and taken else None
    return SubtreePresence(subtree, total, dict(taken), cursor)


def merge_pages(pages: Iterable[Iterable[tuple[str, int]]]) -> Iterator[tuple[str, int]]:
    """Pages of disjoint names, each in order, as one in order (a root spanning partitions)."""
    return heapq.merge(*pages)


@dataclass(slots=True)
class _Entry:
    count: int = 0
    users: Counter[str] = field(default_factory=Counter)


class PresenceTally:
    """One process's subscriptions per name, and which names changed since they were taken."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._dirty: set[str] = set()
        #: Subscriptions per top-level segment (for metrics).
        self.segments: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, name: str, user: str | None = None) -> bool:
        """Count one more subscription to ``name`` (by ``user``, when known).

        Returns whether ``user`` is new on ``name`` in this process (a join here).
        """
        entry = self._entries.get(name)
        if entry is None:
            entry = self._entries[name] = _Entry()
        entry.count += 1
        joined = False
        if user is not None:
            entry.users[user] += 1
            joined = entry.users[user] == 1
        self.segments[first_segment_of(name)] += 1
        self._dirty.add(name)
        return joined

    def discard(self, name: str, user: str | None = None) -> bool:
        """Count one subscription to ``name`` fewer; the name is forgotten at zero.

        Returns whether that was ``user``'s last one on ``name`` here (a leave here).
        """
        entry = self._entries.get(name)
        if entry is None:
            return False
        entry.count -= 1
        left = False
        if user is not None:
            entry.users[user] -= 1
            if entry.users[user] <= 0:
                del entry.users[user]
                left = True
        segment = first_segment_of(name)
        self.segments[segment] -= 1
        if self.segments[segment] <= 0:
            del self.segments[segment]
        if entry.count <= 0:
            del self._entries[name]
        self._dirty.add(name)
        return left

    def count(self, name: str) -> int:
        """Subscriptions to ``name`` in this process."""
        entry = self._entries.get(name)
        return entry.count if entry is not None else 0

    def users(self, name: str) -> list[str]:
        """Distinct users subscribed to ``name`` here, sorted, at most :data:`MAX_USERS`."""
        entry = self._entries.get(name)
        if entry is None:
            return []
        return sorted(entry.users)[:MAX_USERS]

    def value(self, name: str) -> str:
        """``name``'s entry as brokers store it ("" once it has no subscriptions)."""
        entry = self._entries.get(name)
        if entry is None:
            return ""
        return encode_value(entry.count, self.users(name))

    @property
    def changed(self) -> bool:
        """Whether any name changed since :meth:`take_changes`."""
        return bool(self._dirty)

    def take_changes(self) -> list[str]:
        """The names changed since the last call (each once), sorted; forgets them."""
        dirty, self._dirty = self._dirty, set()
        return sorted(dirty)

    def restore(self, names: Iterable[str]) -> None:
        """Mark names changed again (their publication failed: send them next time)."""
        self._dirty.update(names)

    def names(self) -> list[str]:
        """Every name with subscriptions here, sorted."""
        return sorted(self._entries)

    def channel(self, name: str) -> ChannelPresence:
        """``name``'s presence in this process alone."""
        return ChannelPresence(name, self.count(name), self.users(name))

    def below(self, prefix: str, cursor: str | None, limit: int) -> SubtreePresence:
        """The page of names starting with ``prefix`` after ``cursor``, and their total.

        ``prefix`` "" is everything (the root).  Costs one pass over this
        process's names: bounded by what is subscribed here, not by history.
        """
        after = start_after(prefix, cursor)
        total = 0
        matching: list[tuple[str, int]] = []
        for name, entry in self._entries.items():
            if not name.startswith(prefix):
                continue
            total += entry.count
            if after is None or name > after:
                matching.append((name, entry.count))
        subtree = prefix or "/"
        return page(subtree, total, heapq.nsmallest(limit + 1, matching), limit)
