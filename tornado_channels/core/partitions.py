"""Partitions: which part of the history a channel lives in (pure).

A broker's history may be split into partitions, each with its own sequence
and epoch, so that no publish touches state shared by every channel: that is
what lets a Redis Cluster spread publishes over its masters.  A channel's
partition follows from its *first segment*, so a channel and every subtree
above it (``users/1/a``, ``users/1/``, ``users/``) share one partition: a
channel's recovery merges streams of one partition, with one sequence, in
publish order, as before.  The root (``/``) is above every first segment: a
publish to it is written to every partition, and each copy reaches the
channels of its own partition.

With one partition (the embedded broker, a standalone or Sentinel Redis)
everything is as if there were none.
"""

from __future__ import annotations

import zlib

from .channels import Channel, Target


def first_segment(name: str) -> str:
    """The first segment of a channel name or subtree prefix."""
    cut = name.find("/")
    return name if cut < 0 else name[:cut]


def partition_of_segment(segment: str, count: int) -> int:
    """The partition of every channel whose first segment is ``segment``."""
    if count == 1:
        return 0
    # CRC-32: stable across processes and versions (unlike hash()), and cheap.
    return zlib.crc32(segment.encode("utf-8")) % count


def partition_of(target: Target, count: int) -> int | None:
    """The partition a publication to ``target`` goes to; None for the root (all of them)."""
    name = target.name if isinstance(target, Channel) else target.prefix
    if not name:
        return None
    return partition_of_segment(first_segment(name), count)


def one_sequence(target: Target, count: int) -> bool:
    """Whether one sequence numbers everything that reaches ``target`` (all but the split root)."""
    return count == 1 or partition_of(target, count) is not None


def channel_partition(channel: Channel, count: int) -> int:
    """The partition of ``channel`` (a channel always has a first segment)."""
    return partition_of_segment(first_segment(channel.name), count)
