"""Where everything lives in Redis: one key layout for the broker and every publisher.

Every key and pub/sub channel of partition ``p`` carries the same hash tag,
so in a Redis Cluster one partition is one slot: a publish script touches
keys of one slot (as a cluster requires), and its shard channels
(``SPUBLISH``) are served by the same master.  Tags are chosen so the
partitions' slots are spread evenly over the slot space, hence over the
masters::

    <prefix>{<tag>}meta        hash: epoch, seq, base, replid, mark (partition state)
    <prefix>{<tag>}marks       list: "<second>:<first seq>" per second with publishes
    <prefix>{<tag>}h:c:<name>  stream: history of channel <name>
    <prefix>{<tag>}h:t:<pre>   stream: history of subtree <pre>/ ("" for the root)
    <prefix>{<tag>}c:<name>    pub/sub channel: publications to channel <name>
    <prefix>{<tag>}t:<pre>     pub/sub channel: publications to subtree <pre>/
    <prefix>{<tag>}i:<key>     string: an idempotency key's fingerprint and positions
    <prefix>{<tag>}n:<node>    pub/sub channel: one process's liveness probe
    <prefix>{<tag>}watch       sorted set: subtrees someone subscribes to, by expiry (ms)
    <prefix>{<tag>}wstart      hash: subtree -> the first number its b-stream holds all below
    <prefix>{<tag>}h:b:<pre>   stream: everything published below <pre>/ while it is watched
    <prefix>{<tag>}b:<pre>     pub/sub channel: the same, live
    <prefix>{<tag>}ev          stream: lifecycle events not yet delivered (redis_events.py)
    <prefix>{<tag>}evl         string: the lease of the process delivering them
    <prefix>{<tag>}evd         string: events dropped for the cap, not yet counted

A subtree's keys are in the partition of its first segment; the root's
(``b:``) are in every partition.
"""

from __future__ import annotations

from functools import cache

from ..core.channels import Channel, Target
from ..core.history import above_keys, channel_keys, stream_key
from ..core.partitions import (
    channel_partition,
    first_segment,
    partition_of,
    partition_of_segment,
)

#: Slots in a Redis Cluster.
SLOTS = 16384


def _crc16(data: bytes) -> int:
    """CRC-16/XMODEM, the checksum Redis Cluster maps keys to slots with."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        crc &= 0xFFFF
    return crc


def key_slot(key: bytes) -> int:
    """The cluster slot of ``key`` (its hash tag's, when it has one)."""
    start = key.find(b"{")
    if start >= 0:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return _crc16(key) % SLOTS


@cache
def partition_tag(partition: int, count: int) -> bytes:
    """A hash tag whose slot lies in partition ``partition``'s share of the slot space.

    With ``count`` partitions the slot space is cut into ``count`` equal
    ranges and each partition gets a tag in its own: however the cluster
    assigns contiguous slot ranges to masters, the partitions spread over
    them as evenly as the ranges do.
    """
    if count == 1:
        return b"0"
    low = partition * SLOTS // count
    high = (partition + 1) * SLOTS // count
    for suffix in range(1_000_000):
        tag = b"%d.%d" % (partition, suffix)
        if low <= _crc16(tag) % SLOTS < high:
            return tag
    raise AssertionError("no tag found for a slot range")  # pragma: no cover


class KeyLayout:
    """The Redis keys and channels of a deployment: ``prefix`` and partition count."""

    def __init__(self, prefix: bytes, partitions: int = 1) -> None:
        if partitions < 1 or partitions > 256:
            raise ValueError("partitions must be between 1 and 256")
        self.prefix = prefix
        self.partitions = partitions
        self._bases = [
            prefix + b"{" + partition_tag(p, partitions) + b"}" for p in range(partitions)
        ]
        # Made once: the events prefix is checked on every message a link receives.
        self._presence = [
            [
                base + suffix
                for suffix in (b"pn", b"pc", b"pt", b"ps", b"pp:", b"pu", b"pe:", b"ev", b"evd")
            ]
            for base in self._bases
        ]
        self._events = [[base + b"ev", base + b"evl", base + b"evd"] for base in self._bases]

    def base(self, partition: int) -> bytes:
        """What every key of ``partition`` starts with (its prefix and hash tag)."""
        return self._bases[partition]

    def slot(self, partition: int) -> int:
        """The cluster slot of every key of ``partition``."""
        return key_slot(self._bases[partition])

    def meta(self, partition: int) -> bytes:
        """The partition's state: epoch, sequence, replication id, last mark."""
        return self._bases[partition] + b"meta"

    def marks(self, partition: int) -> bytes:
        """The per-second marks behind the partition's watermark."""
        return self._bases[partition] + b"marks"

    def stream(self, partition: int, target: Target) -> bytes:
        """The history stream of ``target`` in ``partition``."""
        return self._bases[partition] + b"h:" + stream_key(target)

    def channel(self, partition: int, target: Target) -> bytes:
        """The pub/sub channel of publications to ``target`` in ``partition``."""
        return self._bases[partition] + stream_key(target)

    def idempotency(self, partition: int, key: str) -> bytes:
        """Where ``partition`` remembers what an idempotency key published."""
        return self._bases[partition] + b"i:" + key.encode("ascii")

    def control(self, partition: int, node: bytes) -> bytes:
        """A process's own probe channel on the master of ``partition``."""
        return self._bases[partition] + b"n:" + node

    def partitions_of(self, target: Target) -> range | tuple[int]:
        """The partitions a publication to ``target`` is written to (every one for the root)."""
        partition = partition_of(target, self.partitions)
        return range(self.partitions) if partition is None else (partition,)

    def channel_partition(self, channel: Channel) -> int:
        """The partition ``channel`` lives in."""
        return channel_partition(channel, self.partitions)

    def watch(self, partition: int) -> bytes:
        """The subtrees watched in ``partition``, by expiry."""
        return self._bases[partition] + b"watch"

    def watch_start(self, partition: int) -> bytes:
        """Since when each watched subtree's b-stream holds everything below it."""
        return self._bases[partition] + b"wstart"

    def presence(self, partition: int) -> list[bytes]:
        """presence.lua's keys in ``partition`` (see that script for what each holds)."""
        return self._presence[partition]

    def presence_events(self, partition: int) -> bytes:
        """What the pub/sub channels of joins and leaves in ``partition`` start with."""
        return self._presence[partition][6]

    def events(self, partition: int) -> list[bytes]:
        """events.lua's keys in ``partition``: the stream, the lease, the dropped count."""
        return self._events[partition]

    def presence_partition(self, name: str) -> int:
        """The partition a presence name (``users/1``, ``users/``, ``/``) is counted in.

        Its target's, as :meth:`home` places it: by first segment, the root in 0.
        """
        if name == "/":
            return 0
        return partition_of_segment(first_segment(name), self.partitions)

    def home(self, target: Target) -> int:
        """The partition whose sequence a target's subscribers follow (0 for the root)."""
        partition = partition_of(target, self.partitions)
        return 0 if partition is None else partition

    def subscriptions(self, target: Target) -> list[tuple[int, list[bytes]]]:
        """Per partition, the pub/sub channels a subscriber of ``target`` needs there.

        A channel: its own and its subtrees', in its partition.  A subtree:
        everything below it (``b:<prefix>``) and the subtrees above it; the
        root's, in every partition.
        """
        if isinstance(target, Channel):
            partition = self.channel_partition(target)
            base = self._bases[partition]
            return [(partition, [base + key for key in channel_keys(target)])]
        if not target.prefix:
            return [(p, [self._bases[p] + b"b:"]) for p in range(self.partitions)]
        partition = self.home(target)
        base = self._bases[partition]
        return [
            (
                partition,
                [
                    base + b"b:" + target.prefix.encode("utf-8"),
                    *(base + key for key in above_keys(target)),
                ],
            )
        ]

    def recovery_streams(self, target: Target) -> tuple[int, list[bytes]]:
        """The partition of ``target``, and the streams its recovery merges.

        A subtree's are its b-stream and the streams of the subtrees above it.
        """
        partition = self.home(target)
        base = self._bases[partition] + b"h:"
        if isinstance(target, Channel):
            return partition, [base + key for key in channel_keys(target)]
        below = base + b"b:" + target.prefix.encode("utf-8")
        return partition, [below, *(base + key for key in above_keys(target))]
