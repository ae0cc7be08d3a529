"""Positions and the memory history (pure: time is passed in)."""

from __future__ import annotations

from tornado_channels.core.channels import Channel, Subtree
from tornado_channels.core.history import (
    STREAM_GRACE,
    TOO_OLD,
    TRIMMED,
    Entry,
    MemoryHistory,
    StreamView,
    channel_keys,
    merge,
    stream_key,
    watermark,
)
from tornado_channels.core.publication import Position


def store(history: MemoryHistory, key: bytes, now: float = 0.0) -> Position:
    position = history.next_position()
    history.store(key, position, str(position.seq).encode(), now)
    return position


def seqs(entries: list[Entry]) -> list[int]:
    return [entry.seq for entry in entries]


def test_channel_keys_are_its_own_and_its_subtrees() -> None:
    """A channel hears its own stream and every subtree stream above it."""
    assert channel_keys(Channel("users/1")) == [b"c:users/1", b"t:", b"t:users"]
    assert stream_key(Subtree("")) == b"t:"


def test_recovery_merges_channel_and_subtree_streams_in_publish_order() -> None:
    """Messages to the channel, its subtrees and the root come back in publish order."""
    history = MemoryHistory("e")
    store(history, b"c:users/1")
    store(history, b"t:users")
    store(history, b"c:users/2")  # another channel: not ours
    store(history, b"t:")
    store(history, b"c:users/1")
    entries, gap = history.recover(channel_keys(Channel("users/1")), Position("e", 0), now=1.0)
    assert not gap
    assert seqs(entries) == [1, 2, 4, 5]


def test_recovery_starts_strictly_after_the_position() -> None:
    """What the client already has (its position and before) is not sent again."""
    history = MemoryHistory("e")
    for _ in range(5):
        store(history, b"c:a")
    entries, gap = history.recover([b"c:a"], Position("e", 3), now=1.0)
    assert not gap
    assert seqs(entries) == [4, 5]


def test_a_trimmed_gap_makes_recovery_incomplete() -> None:
    """Past max_size, a position before the oldest kept message cannot be recovered."""
    history = MemoryHistory("e", max_size=3)
    for _ in range(6):
        store(history, b"c:a")
    assert history.recover([b"c:a"], Position("e", 1), now=1.0)[1]
    kept, kept_gap = history.recover([b"c:a"], Position("e", 3), now=1.0)
    assert not kept_gap
    assert seqs(kept) == [4, 5, 6]


def test_expired_messages_make_recovery_incomplete() -> None:
    """A message older than max_age after the position counts as missed."""
    history = MemoryHistory("e", max_age=10)
    store(history, b"c:a", now=0.0)
    store(history, b"c:a", now=20.0)
    assert history.recover([b"c:a"], Position("e", 0), now=25.0)[1]
    assert not history.recover([b"c:a"], Position("e", 1), now=25.0)[1]


def test_another_epoch_cannot_be_recovered() -> None:
    """A position from a lost history (another epoch) is refused with a reason."""
    history = MemoryHistory("new")
    store(history, b"c:a")
    _, gap = history.recover([b"c:a"], Position("old", 0), now=1.0)
    assert gap
    assert "epoch" in gap


def test_merge_checks_every_streams_floor() -> None:
    """One stream trimmed past the position is enough to make recovery incomplete."""
    full = StreamView([Entry(5, 0.0, b"x")], None, 5)
    trimmed = StreamView([Entry(7, 0.0, b"y")], 6, 7)
    assert merge([full, trimmed], since=2, now=1.0, max_age=60, low=1)[1] == TRIMMED
    assert seqs(merge([full, trimmed], since=6, now=1.0, max_age=60, low=1)[0]) == [7]


def test_a_position_older_than_the_watermark_needs_a_stream_that_vouches_for_it() -> None:
    """Before the watermark, only a live stream that began at or before the position proves it."""
    vanished = StreamView([], None, None)
    reborn = StreamView([Entry(9, 0.0, b"z")], None, 9)
    continuous = StreamView([Entry(3, 0.0, b"a"), Entry(9, 0.0, b"z")], None, 3)
    assert merge([vanished], since=2, now=1.0, max_age=60, low=8)[1] == TOO_OLD
    assert merge([reborn], since=2, now=1.0, max_age=60, low=8)[1] == TOO_OLD
    assert seqs(merge([continuous], since=2, now=1.0, max_age=60, low=8)[0]) == [3, 9]
    # From the watermark on, a vanished stream held nothing after the position.
    assert merge([vanished, reborn], since=7, now=1.0, max_age=60, low=8) == (
        [reborn.entries[0]],
        "",
    )


def test_the_watermark_is_the_first_number_published_within_the_age() -> None:
    """Marks older than the age are passed over; with none recent, it is the next number."""
    marks = [(10.0, 1), (20.0, 5), (30.0, 9)]
    assert watermark(marks, now=25.0, max_age=10, next_seq=12) == 5
    assert watermark(marks, now=100.0, max_age=10, next_seq=12) == 12
    assert watermark([], now=0.0, max_age=10, next_seq=1) == 1


def test_idle_streams_are_dropped_and_resuming_before_them_fails() -> None:
    """A stream idle past max_age is dropped (memory stays bounded), never silently."""
    history = MemoryHistory("e", max_age=10)
    store(history, b"c:old", now=0.0)
    for n in range(5):
        store(history, f"c:new{n}".encode(), now=20.0)
    assert b"c:old" not in history._streams
    _, gap = history.recover([b"c:old"], Position("e", 0), now=20.0)
    assert gap
    assert not history.recover([b"c:old"], Position("e", 1), now=20.0)[1]


def test_a_sweep_drops_every_idle_stream_without_a_publish() -> None:
    """sweep() frees all streams idle past the age plus grace, keeps live ones, and counts them."""
    history = MemoryHistory("e", max_age=10)
    for n in range(100):
        store(history, f"c:old{n}".encode(), now=0.0)
    store(history, b"c:live", now=5.0)
    assert history.sweep(now=10.0 + STREAM_GRACE) == 0
    assert history.sweep(now=10.0 + STREAM_GRACE + 0.5) == 100
    assert (len(history), history.keys_below(Subtree(""))) == (1, [b"c:live"])
    assert history.marks() == 2  # seconds 0 and 5: both within the age
