"""The hub: this process's subscribers, and broadcast to them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Protocol

from .core.channels import Channel, Subtree, Target
from .core.deflate import Deflate
from .core.frames import CLOSE_INTERNAL_ERROR, CLOSE_SLOW_CONSUMER, Encoding, MessageFrames
from .core.partitions import partition_of_segment
from .core.publication import Publication
from .core.trie import SubscriberTrie

log = logging.getLogger("tornado_channels.hub")

#: Unread bytes a subscriber may fall behind before it is closed as a slow consumer.
MAX_BUFFERED_BYTES = 1 << 20

#: Most bytes of messages joined into one write: a subscriber's unread bytes
#: stay within the bound plus this (or plus one message, if larger).
_MAX_JOINED = 1 << 16


class Subscriber(Protocol):
    """One local connection that receives frames (a WebSocket, in practice).

    Implementations are compared by identity, as ordinary objects are.
    """

    def __hash__(self) -> int: ...

    #: How it takes messages (see frames.encode_for).
    encoding: Encoding
    #: How messages to it are compressed (None: uncompressed); see core/deflate.py.
    deflate: Deflate | None

    @property
    def recovering(self) -> bool:
        """True while it is being sent a recovery.

        It then needs each message as its own frame, with its number, to drop
        what the recovery already sent.
        """

    def send_frame(self, frame: bytes, seq: int) -> None:
        """Queue an already-encoded frame of the message numbered ``seq``.

        Never blocks, never awaits.  ``seq`` lets a client that is recovering
        drop what its recovery already sent.
        """

    def buffered_bytes(self) -> int:
        """Bytes queued for this subscriber that the peer has not yet taken."""

    def offer(self, frame: bytes, seq: int, limit: int) -> bool:
        """:meth:`send_frame`, unless more than ``limit`` bytes are unread: then False.

        The hub's one call per subscriber per message (in one, what would be
        three: the fan-out's Python cost is per call).
        """

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the connection with a WebSocket close code."""


class Hub:
    """Local subscribers by channel, and the broadcast that feeds them.

    ``max_buffered_bytes`` bounds what one subscriber may leave unread: past it
    the subscriber is closed as a slow consumer instead of growing memory.
    With several history ``partitions`` (see core/partitions.py), a publish
    to the root arrives once per partition, each copy for the channels of its
    own partition.
    """

    def __init__(self, max_buffered_bytes: int = MAX_BUFFERED_BYTES, partitions: int = 1) -> None:
        self.max_buffered_bytes = max_buffered_bytes
        self.partitions = partitions
        self._trie: SubscriberTrie[Subscriber] = SubscriberTrie()
        #: Messages written to subscribers (one per subscriber per message).
        self.delivered = 0
        #: Subscribers closed for passing ``max_buffered_bytes``.
        self.slow_disconnects = 0
        #: Subscribers closed because writing to them failed.
        self.error_disconnects = 0

    def __len__(self) -> int:
        return len(self._trie)

    def add(self, target: Target, subscriber: Subscriber) -> bool:
        """Add a subscriber of a channel or a subtree; False if it already was one."""
        if isinstance(target, Subtree):
            return self._trie.watch(target.prefix, subscriber)
        return self._trie.add(target.name, subscriber)

    def discard(self, target: Target, subscriber: Subscriber) -> bool:
        """Remove a subscriber; False if it was not on ``target``."""
        if isinstance(target, Subtree):
            return self._trie.unwatch(target.prefix, subscriber)
        return self._trie.discard(target.name, subscriber)

    def subscribers_of(self, target: Target) -> list[Subscriber]:
        """The subscribers of exactly ``target`` (a channel's, or a subtree's own)."""
        if isinstance(target, Subtree):
            return self._trie.watching(target.prefix)
        return self._trie.subscribers(target.name)

    def count(self, channel: Channel) -> int:
        """Subscribers of ``channel`` in this process."""
        return self._trie.count(channel.name)

    def channels(self) -> dict[str, int]:
        """Channels (and subtrees, as ``prefix/``) with subscribers here, and how many each has."""
        counts = dict(self._trie.channels())
        for prefix, count in self._trie.watched():
            counts[f"{prefix}/" if prefix else "/"] = count
        return counts

    def subscribers(self, partition: int | None = None) -> list[Subscriber]:
        """Every local subscriber (of ``partition``'s channels, if given), once per subscription.

        Subscribers of the root (``/``) hear every partition: they count in each.
        """
        if partition is None or self.partitions == 1:
            return self._trie.below("") + self._trie.all_watchers()
        keep = self._in_partition(partition)
        return self._trie.below("", keep) + self._trie.all_watchers(keep)

    def _in_partition(self, partition: int) -> Callable[[str], bool]:
        count = self.partitions
        return lambda segment: partition_of_segment(segment, count) == partition

    def deliver(self, publications: Sequence[Publication]) -> int:
        """Send publications, in order, to the subscribers they target; return the frames sent.

        Consecutive publications to the same target go out together: their
        frames are joined once and each subscriber gets them in one write (one
        system call instead of one per message).  Joining only consecutive
        ones keeps every subscriber's messages in publish order.
        """
        sent = 0
        start = 0
        count = len(publications)
        for end in range(1, count + 1):
            # A run shares its target and partition (a root publish has a copy
            # per partition, each for its own channels).
            if (
                end == count
                or publications[end].target != publications[start].target
                or publications[end].partition != publications[start].partition
            ):
                sent += self._deliver_run(publications[start:end])
                start = end
        return sent

    def _deliver_run(self, run: Sequence[Publication]) -> int:
        """Deliver publications that share one target."""
        target = run[0].target
        trie = self._trie
        if isinstance(target, Subtree):
            if not target.prefix and self.partitions > 1:
                # One copy per partition, each for its own channels; the
                # root's own subscribers take partition 0's.
                keep = self._in_partition(run[0].partition)
                targets = trie.below("", keep)
                targets += trie.watchers("", True, keep, root=run[0].partition == 0)
            else:
                targets = trie.below(target.prefix) + trie.watchers(target.prefix, True)
        else:
            targets = trie.subscribers(target.name) + trie.watchers(target.name, False)
        if not targets:
            return 0
        groups: dict[tuple[Encoding, Deflate | None], list[Subscriber]] = {}
        for subscriber in targets:
            groups.setdefault((subscriber.encoding, subscriber.deflate), []).append(subscriber)
        sent = 0
        # Encoded (and compressed) once per encoding and compression
        # parameter set, whatever the number of subscribers.
        messages = [
            (
                p.position.seq if p.position is not None else 0,
                MessageFrames(str(p.position), p.payload, str(p.target)),
            )
            for p in run
        ]
        for (encoding, deflate), members in groups.items():
            parts = [(seq, frames.frame(encoding, deflate)) for seq, frames in messages]
            for chunk in _chunks(parts, _MAX_JOINED):
                sent += self.broadcast(members, chunk)
        return sent

    def broadcast(
        self, subscribers: Iterable[Subscriber], parts: Sequence[tuple[int, bytes]]
    ) -> int:
        """Write encoded frames, each with its message number, to each subscriber.

        ``parts`` go out in order, joined into one write per subscriber
        (frame by frame to one that is recovering).  Returns the frames sent.
        Never awaits.  A subscriber whose write fails, or that has more than
        ``max_buffered_bytes`` unread, is closed; the others are unaffected.
        """
        if not parts:
            return 0
        seq, frame = parts[-1]
        if len(parts) > 1:
            frame = b"".join(part for _, part in parts)
        per_subscriber = len(parts)
        sent = 0
        limit = self.max_buffered_bytes
        for subscriber in subscribers:
            try:
                # Checked before writing, so a single large message still
                # reaches an idle subscriber; the bound is limit + one write
                # (at most 64 KiB, or one message).
                if per_subscriber > 1 and subscriber.recovering:
                    if subscriber.buffered_bytes() <= limit:
                        for part_seq, part in parts:
                            subscriber.send_frame(part, part_seq)
                        sent += per_subscriber
                        continue
                elif subscriber.offer(frame, seq, limit):
                    sent += per_subscriber
                    continue
            except Exception:
                self.error_disconnects += 1
                log.exception("closing a subscriber whose write failed")
                _close_quietly(subscriber, CLOSE_INTERNAL_ERROR, "write failed")
                continue
            self.slow_disconnects += 1
            _close_quietly(subscriber, CLOSE_SLOW_CONSUMER, "slow consumer")
        self.delivered += sent
        return sent


def _chunks(parts: list[tuple[int, bytes]], most: int) -> Iterator[list[tuple[int, bytes]]]:
    """``parts`` in order, in chunks of at most ``most`` bytes (or one part, if larger)."""
    chunk: list[tuple[int, bytes]] = []
    size = 0
    for part in parts:
        if chunk and size + len(part[1]) > most:
            yield chunk
            chunk, size = [], 0
        chunk.append(part)
        size += len(part[1])
    if chunk:
        yield chunk


def _close_quietly(subscriber: Subscriber, code: int, reason: str) -> None:
    try:
        subscriber.close(code, reason)
    except Exception:
        log.debug("closing a subscriber failed", exc_info=True)
