"""History in Redis: positions, the streams they index, and recovery from them.

One Lua script per partition (publish.lua) takes the partition's next
numbers, appends each message to its target's stream (trimmed to the
history size, expiring once idle for the history age), publishes its
envelope with its position, and remembers idempotency keys, atomically:
positions and deliveries can never disagree, and a retried publish is
answered, not repeated.  Every script starts with claim.lua, which starts a
new epoch when the master it runs on is not the one that wrote the
partition's state (a promoted replica, a restarted master).  The key layout
is keys.py's; nothing here knows whether Redis is standalone, behind
Sentinel or a cluster: the caller hands over the client for the partition.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError

from ..core.channels import Channel, Subtree, Target
from ..core.history import FUTURE, LOST, STREAM_GRACE, Entry, StreamView, merge
from ..core.idempotency import Idempotency
from ..core.publication import Position, Publication, Receipt, Recovery, decode, encode_head
from .base import IdempotencyConflict
from .keys import KeyLayout
from .pipe import CommandPipe


def _script(name: str) -> bytes:
    claim = (resources.files(__package__) / "claim.lua").read_bytes()
    return claim + (resources.files(__package__) / name).read_bytes()


#: The scripts, each with claim.lua in front (see the .lua files for their keys and arguments).
PUBLISH_SCRIPT = _script("publish.lua")
RECOVER_SCRIPT = _script("recover.lua")
HEAD_SCRIPT = _script("head.lua")
WATCH_SCRIPT = _script("watch.lua")

#: The reason a subtree's recovery fails when nobody watched it at the position.
UNWATCHED = "nobody subscribed to that subtree at that position"


class ReplicasBehind(Exception):
    """Fewer replicas than asked for confirmed a publish in time (it is published)."""


@dataclass(frozen=True, slots=True)
class Group:
    """Publications to one partition that succeed or replay together (one key at most)."""

    publications: Sequence[Publication]
    idempotency: Idempotency | None = None


#: Runs a command on a partition's master (the broker's reads: Redis errors become
#: BrokerUnavailable), for the stores that share the broker's connections.
Run = Callable[[int, Callable[[Redis], Awaitable[Any]]], Awaitable[Any]]


class LuaScript:
    """A Lua script sent by its SHA1, loaded where a server does not know it yet."""

    def __init__(self, source: bytes) -> None:
        self.source = source
        self.sha = hashlib.sha1(source).hexdigest()

    async def run(
        self,
        client: Redis,
        keys: Sequence[bytes],
        args: Sequence[Any],
        wait: tuple[int, int] | None,
        pipe: CommandPipe | None = None,
    ) -> Any:
        """Run on ``client``'s server; with ``wait`` (replicas, ms), WAIT on its connection.

        Through ``pipe`` when there is one (the publish path: a CommandPipe to
        the same server costs a third of redis-py's client CPU), else redis-py.
        """
        for attempt in (0, 1):
            try:
                if pipe is not None:
                    evalsha = [b"EVALSHA", self.sha, len(keys), *keys, *args]
                    if wait is None:
                        return (await pipe.call(evalsha))[0]
                    result, acked = await pipe.call(evalsha, [b"WAIT", *wait])
                    if int(acked) < wait[0]:
                        raise ReplicasBehind(f"{acked} of {wait[0]} replicas confirmed in time")
                    return result
                if wait is None:
                    return await client.evalsha(self.sha, len(keys), *keys, *args)
                batch = client.pipeline(transaction=False)
                batch.evalsha(self.sha, len(keys), *keys, *args)
                batch.execute_command("WAIT", *wait)
                result, acked = await batch.execute()
                if int(acked) < wait[0]:
                    raise ReplicasBehind(f"{acked} of {wait[0]} replicas confirmed in time")
                return result
            except NoScriptError:
                # Not run: a server that restarted, or failed over, lost its
                # script cache.  Load it there and send it again.
                if attempt:
                    raise
                await client.script_load(self.source)
        raise AssertionError("unreachable")  # pragma: no cover


class RedisHistory:
    """The history side of a :class:`~tornado_channels.brokers.redis.RedisBroker`.

    Its methods raise Redis's own errors (and :class:`ReplicasBehind`); the
    broker turns them into its own.
    """

    def __init__(
        self,
        layout: KeyLayout,
        *,
        size: int,
        age: float,
        idempotency_ttl: float,
        sharded: bool = False,
        wait_replicas: int = 0,
        wait_timeout: float = 1.0,
    ) -> None:
        self.layout = layout
        self.size = size
        self.age = age
        self._stream_ttl = int((age + STREAM_GRACE) * 1000)
        self._idempotency_ttl = max(1, int(idempotency_ttl * 1000))
        self._command = b"SPUBLISH" if sharded else b"PUBLISH"
        self._wait = (wait_replicas, max(1, int(wait_timeout * 1000))) if wait_replicas else None
        self._publish = LuaScript(PUBLISH_SCRIPT)
        self._recover = LuaScript(RECOVER_SCRIPT)
        self._head = LuaScript(HEAD_SCRIPT)
        self._watch = LuaScript(WATCH_SCRIPT)

    def _new_epoch(self, partition: int) -> str:
        # With partitions, an epoch names its partition too: a position
        # brought to the wrong one is told apart from a lost one.
        random = secrets.token_hex(4)
        return random if self.layout.partitions == 1 else f"{partition:02x}{random}"

    def partition_of_epoch(self, epoch: str) -> int | None:
        """The partition an epoch of this layout belongs to (None if it cannot say)."""
        if self.layout.partitions == 1:
            return 0
        try:
            return int(epoch[:2], 16) if len(epoch) == 10 else None
        except ValueError:
            return None

    async def publish(
        self,
        client: Redis,
        partition: int,
        groups: Sequence[Group],
        pipe: CommandPipe | None = None,
    ) -> list[Receipt | IdempotencyConflict]:
        """Publish ``groups`` to ``partition`` in one script call; a result per group, in order."""
        layout = self.layout
        keys = [layout.meta(partition), layout.marks(partition)]
        messages: list[bytes] = []
        specs: list[bytes | str | int] = []
        idempotency_keys: list[bytes] = []
        count = 0
        for group in groups:
            for publication in group.publications:
                target = publication.target
                keys.append(layout.stream(partition, target))
                # The root's copies outside partition 0 reach no watcher: the
                # root's own subscribers take partition 0's.
                copy = isinstance(target, Subtree) and not target.prefix and partition != 0
                messages += (
                    encode_head(target),
                    publication.payload,
                    layout.channel(partition, target),
                    b"" if copy else _watchers_of(target),
                )
                count += 1
            specs.append(len(group.publications))
            if group.idempotency is None:
                specs.append("")
            else:
                specs.append(group.idempotency.fingerprint)
                idempotency_keys.append(layout.idempotency(partition, group.idempotency.key))
        args: list[Any] = [
            self._new_epoch(partition),
            self.size + 1,
            self._stream_ttl,
            int(self.age) + 2,
            self._idempotency_ttl,
            self._command,
            count,
            len(groups),
            layout.base(partition),
            *messages,
            *specs,
        ]
        reply = await self._publish.run(client, [*keys, *idempotency_keys], args, self._wait, pipe)
        epoch = reply[0].decode("ascii")
        results: list[Receipt | IdempotencyConflict] = []
        for group, result in zip(groups, reply[1:], strict=True):
            if isinstance(result, int):
                results.append(
                    Receipt([Position(epoch, result + i) for i in range(len(group.publications))])
                )
            elif result == b"!":
                results.append(IdempotencyConflict("the key was used for another publish"))
            else:
                replayed = result[1:].decode("ascii").split(" ")
                results.append(Receipt([Position.parse(text) for text in replayed], True))
        return results

    async def head(self, client: Redis, partition: int) -> Position:
        """The latest position of ``partition`` (starting an epoch if none exists yet)."""
        epoch, seq = await self._head.run(
            client, [self.layout.meta(partition)], [self._new_epoch(partition)], None
        )
        return Position(epoch.decode("ascii"), int(seq))

    async def watch(
        self, client: Redis, partition: int, prefixes: Sequence[str], ttl: float
    ) -> tuple[Position, list[bool]]:
        """Watch subtrees of ``partition`` ``ttl`` seconds more.

        Returns the partition's head, and per prefix whether its watch had
        lapsed: a subtree whose watch lapsed (or never was) is complete from
        that head on only, so its subscribers may have missed what came before.
        """
        layout = self.layout
        keys = [layout.meta(partition), layout.watch(partition), layout.watch_start(partition)]
        args = [self._new_epoch(partition), int(ttl * 1000), *prefixes]
        epoch, seq, *lapsed = await self._watch.run(client, keys, args, None)
        return Position(epoch.decode("ascii"), int(seq)), [bool(flag) for flag in lapsed]

    async def recover(self, client: Redis, target: Target, since: Position) -> Recovery:
        """Merge the target's streams after ``since`` (a subtree's: below it, and above it)."""
        partition, streams = self.layout.recovery_streams(target)
        owner = self.partition_of_epoch(since.epoch)
        if owner is not None and owner != partition:
            return Recovery([], False, "that position belongs to another channel's partition")
        layout = self.layout
        keys = [layout.meta(partition), layout.marks(partition), layout.watch_start(partition)]
        args: list[Any] = [self._new_epoch(partition), since.seq, int(self.age)]
        if isinstance(target, Subtree):
            args.append(target.prefix)
        reply = await self._recover.run(client, [*keys, *streams], args, None)
        epoch, seq, base, now_ms, low, start, least = reply[:7]
        if epoch.decode("ascii") != since.epoch or since.seq < int(base):
            return Recovery([], False, LOST)
        if since.seq > int(seq):
            return Recovery([], False, FUTURE)
        if isinstance(target, Subtree) and (int(start) < 0 or since.seq + 1 < int(start)):
            return Recovery([], False, UNWATCHED)
        views = []
        rest = reply[7:]
        # A stream at its cap may have been trimmed: only what comes after its
        # oldest entry is certain (see publish.lua).  The cap is the smallest
        # any writer used: a server or publisher with a smaller --history-size
        # trims to its own, which this process must not mistake for complete.
        cap = min(self.size + 1, int(least) or self.size + 1)
        for index in range(0, len(rest), 3):
            length, oldest, raw = int(rest[index]), int(rest[index + 1]), rest[index + 2]
            floor = oldest - 1 if length >= cap else None
            views.append(StreamView(_entries(raw), floor, oldest if oldest >= 0 else None))
        entries, gap = merge(views, since.seq, int(now_ms) / 1000, self.age, int(low))
        return Recovery([decode(entry.data, partition) for entry in entries], not gap, gap)


def _watchers_of(target: Target) -> bytes:
    """The subtrees a publication to ``target`` reaches below, each followed by a newline.

    Names cannot hold a newline (control characters are invalid), and the
    root's prefix is empty, so each name ends with one rather than joining them.
    """
    if isinstance(target, Channel):
        prefixes: Sequence[str] = target.ancestors()
    else:
        prefixes = (*Channel(target.prefix).ancestors(), target.prefix) if target.prefix else ("",)
    return b"".join(prefix.encode("utf-8") + b"\n" for prefix in prefixes)


def _entries(raw: list[Any]) -> list[Entry]:
    """Stream entries as XRANGE returns them to a script: ``[id, [field, value, ...]]``."""
    entries = []
    for ident, fields in raw:
        values = dict(zip(fields[::2], fields[1::2], strict=True))
        entries.append(Entry(int(ident.split(b"-")[0]), int(values[b"t"]) / 1000, values[b"d"]))
    return entries
