"""The recovery seam: replayed history, the outcome, then held live frames, none twice (pure)."""

from __future__ import annotations

import json

import pytest

from tornado_channels.core.channels import Channel
from tornado_channels.core.frames import Encoding
from tornado_channels.core.publication import Position, Publication, Recovery
from tornado_channels.core.resume import UNNUMBERED, Overflow, Resume

EPOCH = "e1"


def published(seq: int, text: str) -> Publication:
    return Publication(Channel("a"), text.encode(), Position(EPOCH, seq))


def texts(frames: list[bytes]) -> list[object]:
    """The JSON of each (envelope-encoded) frame: 2-byte headers, payloads under 126 bytes."""
    return [json.loads(frame[2:]) for frame in frames]


def test_held_frames_the_replay_covered_are_not_sent_twice() -> None:
    """Live frames 3 and 4 arrive during a replay of 2 and 3: 3 goes out once, from history."""
    resume = Resume(Position(EPOCH, 1), limit=1 << 20)
    assert resume.holding
    assert resume.take(3, b"live-3")
    assert resume.take(4, b"live-4")
    recovery = Recovery([published(2, "two"), published(3, "three")])
    frames = resume.seam(recovery, None, Encoding.ENVELOPE)
    assert texts(frames[:2]) == [
        {"position": "e1:2", "data": "two"},
        {"position": "e1:3", "data": "three"},
    ]
    assert texts(frames[2:3]) == [{"recovered": True, "missed": 2, "position": "e1:3"}]
    assert frames[3:] == [b"live-4"]
    assert not resume.holding
    assert not resume.active  # A live frame past the seam was released: nothing to guard.
    assert not resume.take(5, b"live-5")  # Sent straight.


def test_a_complete_recovery_with_nothing_missed_continues_from_the_position() -> None:
    """No history after ``since``: the outcome points at ``since`` itself."""
    resume = Resume(Position(EPOCH, 7), limit=100)
    frames = resume.seam(Recovery([]), None, Encoding.ENVELOPE)
    assert texts(frames) == [{"recovered": True, "missed": 0, "position": "e1:7"}]


def test_a_failed_recovery_releases_every_held_frame_and_points_before_the_first() -> None:
    """Incomplete history: nothing replayed, every held frame sent, continue before it."""
    resume = Resume(Position("old", 500), limit=1 << 20)
    resume.take(3, b"live-3")
    frames = resume.seam(Recovery([], False, "gone"), Position(EPOCH, 9), Encoding.ENVELOPE)
    assert texts(frames[:1]) == [
        {"recovered": False, "missed": 0, "position": "e1:2", "reason": "gone"}
    ]
    assert frames[1:] == [b"live-3"]


def test_a_failed_recovery_with_nothing_held_continues_from_the_head() -> None:
    """Incomplete, nothing live yet: the head is where to continue."""
    resume = Resume(Position("old", 5), limit=100)
    frames = resume.seam(Recovery([], False, "gone"), Position(EPOCH, 9), Encoding.ENVELOPE)
    assert texts(frames)[0]["position"] == "e1:9"  # type: ignore[index]


def test_holding_past_the_limit_overflows() -> None:
    """More held than a subscriber may leave unread: Overflow, and nothing more is held."""
    resume = Resume(Position(EPOCH, 0), limit=10)
    resume.take(1, b"12345")
    with pytest.raises(Overflow):
        resume.take(2, b"1234567")
    assert not resume.holding


def test_over_sse_the_outcome_is_an_event_with_the_position_as_its_id() -> None:
    """The SSE encoding carries the outcome as ``event: recovery`` with ``id:``."""
    resume = Resume(Position(EPOCH, 3), limit=100)
    [outcome] = resume.seam(Recovery([]), None, Encoding.SSE)
    assert outcome.startswith(b"id: e1:3\nevent: recovery\n")


def test_a_late_live_copy_of_a_replayed_message_is_dropped_after_the_seam() -> None:
    """Message 4 read from history, its pub/sub copy arriving after the seam: sent once."""
    resume = Resume(Position(EPOCH, 2), limit=1 << 20)
    assert resume.take(3, b"live-3")
    frames = resume.seam(
        Recovery([published(3, "three"), published(4, "four")]), None, Encoding.ENVELOPE
    )
    assert [m["position"] for m in texts(frames)] == ["e1:3", "e1:4", "e1:4"]  # type: ignore[index]
    assert resume.active  # Guarding: a copy of 4 may still be on its way.
    assert resume.take(4, b"live-4")  # Dropped: the replay sent it.
    assert not resume.take(5, b"live-5")  # Past the seam: sent, and the guard ends.
    assert not resume.active
    assert not resume.take(4, b"cannot-come-again")


def test_a_failed_recovery_guards_the_head_it_names() -> None:
    """Incomplete, nothing held: a late copy at or below the named head would step back."""
    resume = Resume(Position("old", 5), limit=100)
    resume.seam(Recovery([], False, "gone"), Position(EPOCH, 9), Encoding.ENVELOPE)
    assert resume.take(9, b"late-9")
    assert not resume.take(10, b"live-10")


def test_without_a_head_a_failed_recovery_drops_nothing() -> None:
    """A position from a lost epoch says nothing of the new numbers: nothing is dropped."""
    resume = Resume(Position("old", 500), limit=100)
    resume.seam(Recovery([], False, "broker unavailable"), None, Encoding.ENVELOPE)
    assert not resume.active
    assert not resume.take(3, b"live-3")


def test_numbers_from_several_sequences_are_never_compared() -> None:
    """The root on a partitioned history: every held and late frame is sent."""
    resume = Resume(Position(EPOCH, 50), limit=1 << 20)
    resume.take(7, b"live-7")
    frames = resume.seam(
        Recovery([], False, "spans"), Position(EPOCH, 60), Encoding.ENVELOPE, one_sequence=False
    )
    assert frames[1:] == [b"live-7"]
    assert not resume.active
    assert not resume.take(3, b"other-partition-3")


def test_a_fresh_subscriber_gets_the_head_first_then_what_followed_it() -> None:
    """Shown head 5, subscribed while 6 was published: the outcome names 5, then 6 arrives once."""
    resume = Resume(Position(EPOCH, 5), limit=1 << 20, fresh=True)
    frames = resume.seam(Recovery([published(6, "six")]), None, Encoding.ENVELOPE)
    assert texts(frames) == [
        {"recovered": True, "missed": 0, "position": "e1:5"},
        {"position": "e1:6", "data": "six"},
    ]
    assert resume.take(6, b"late-6")
    assert not resume.take(7, b"live-7")


def test_unnumbered_frames_are_held_then_always_sent() -> None:
    """A presence event has no number: no replay covers it, no guard drops it."""
    resume = Resume(Position(EPOCH, 2), limit=1 << 20)
    resume.take(UNNUMBERED, b"join")
    frames = resume.seam(Recovery([published(3, "three")]), None, Encoding.ENVELOPE)
    assert frames[-1] == b"join"
    assert resume.active
    assert not resume.take(UNNUMBERED, b"leave")
    assert resume.active  # It says nothing of where the live stream is.
