"""Positions and the memory history (pure: time is passed in)."""

from __future__ import annotations

import pytest

from tornado_channels.core.channels import Channel, Subtree
from tornado_channels.core.history import (
    Entry,
    InvalidPosition,
    MemoryHistory,
    Position,
    channel_keys,
    recover,
    stream_key,
)


def store(history: MemoryHistory, key: bytes, now: float = 0.0) -> Position:
    position = history.next_position()
    history.store(key, position, str(position.seq).encode(), now)
    return position


def seqs(entries: list[Entry]) -> list[int]:
    return [entry.seq for entry in entries]


def test_positions_round_trip_through_text() -> None:
    """A position prints as <epoch>:<seq> and parses back to itself."""
    position = Position("ab12", 42)
    assert str(position) == "ab12:42"
    assert Position.parse("ab12:42") == position


@pytest.mark.parametrize("text", ["", "ab12", "ab12:", ":3", "AB:3", "ab:-1", "ab:1:2", "x" * 40])
def test_malformed_positions_are_refused(text: str) -> None:
    """Anything but <hex epoch>:<decimal seq> raises InvalidPosition."""
    with pytest.raises(InvalidPosition):
        Position.parse(text)


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
    result = history.recover(channel_keys(Channel("users/1")), Position("e", 0), now=1.0)
    assert result.complete
    assert seqs(result.entries) == [1, 2, 4, 5]


def test_recovery_starts_strictly_after_the_position() -> None:
    """What the client already has (its position and before) is not sent again."""
    history = MemoryHistory("e")
    for _ in range(5):
        store(history, b"c:a")
    result = history.recover([b"c:a"], Position("e", 3), now=1.0)
    assert seqs(result.entries) == [4, 5]


def test_a_trimmed_gap_makes_recovery_incomplete() -> None:
    """Past max_size, a position before the oldest kept message cannot be recovered."""
    history = MemoryHistory("e", max_size=3)
    for _ in range(6):
        store(history, b"c:a")
    assert not history.recover([b"c:a"], Position("e", 1), now=1.0).complete
    kept = history.recover([b"c:a"], Position("e", 3), now=1.0)
    assert kept.complete
    assert seqs(kept.entries) == [4, 5, 6]


def test_expired_messages_make_recovery_incomplete() -> None:
    """A message older than max_age after the position counts as missed."""
    history = MemoryHistory("e", max_age=10)
    store(history, b"c:a", now=0.0)
    store(history, b"c:a", now=20.0)
    assert not history.recover([b"c:a"], Position("e", 0), now=25.0).complete
    assert history.recover([b"c:a"], Position("e", 1), now=25.0).complete


def test_another_epoch_cannot_be_recovered() -> None:
    """A position from a lost history (another epoch) is refused with a reason."""
    history = MemoryHistory("new")
    store(history, b"c:a")
    result = history.recover([b"c:a"], Position("old", 0), now=1.0)
    assert not result.complete
    assert "epoch" in result.reason


def test_merge_checks_every_streams_floor() -> None:
    """One stream trimmed past the position is enough to make recovery incomplete."""
    full = ([Entry(5, 0.0, b"x")], 0)
    trimmed = ([Entry(7, 0.0, b"y")], 6)
    assert not recover([full, trimmed], since=2, now=1.0, max_age=60).complete
    assert seqs(recover([full, trimmed], since=6, now=1.0, max_age=60).entries) == [7]


def test_idle_streams_are_dropped_and_resuming_before_them_fails() -> None:
    """A stream idle past max_age is dropped (memory stays bounded), never silently."""
    history = MemoryHistory("e", max_age=10)
    store(history, b"c:old", now=0.0)
    for n in range(5):
        store(history, f"c:new{n}".encode(), now=20.0)
    assert b"c:old" not in history._streams
    result = history.recover([b"c:old"], Position("e", 0), now=20.0)
    assert not result.complete
    assert history.recover([b"c:old"], Position("e", 1), now=20.0).complete
