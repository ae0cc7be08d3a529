"""The recovery seam: replayed history, the outcome, then held live frames, none twice (pure)."""

from __future__ import annotations

import json

import pytest

from tornado_channels.core.channels import Channel
from tornado_channels.core.frames import Encoding
from tornado_channels.core.publication import Position, Publication, Recovery
from tornado_channels.core.resume import Overflow, Resume

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
    assert resume.hold(3, b"live-3")
    assert resume.hold(4, b"live-4")
    recovery = Recovery([published(2, "two"), published(3, "three")])
    frames = resume.seam(recovery, None, Encoding.ENVELOPE)
    assert texts(frames[:2]) == [
        {"position": "e1:2", "data": "two"},
        {"position": "e1:3", "data": "three"},
    ]
    assert texts(frames[2:3]) == [{"recovered": True, "missed": 2, "position": "e1:3"}]
    assert frames[3:] == [b"live-4"]
    assert not resume.holding
    assert not resume.hold(5, b"live-5")  # Released: sent straight.


def test_a_complete_recovery_with_nothing_missed_continues_from_the_position() -> None:
    """No history after ``since``: the outcome points at ``since`` itself."""
    resume = Resume(Position(EPOCH, 7), limit=100)
    frames = resume.seam(Recovery([]), None, Encoding.ENVELOPE)
    assert texts(frames) == [{"recovered": True, "missed": 0, "position": "e1:7"}]


def test_a_failed_recovery_releases_every_held_frame_and_points_before_the_first() -> None:
    """Incomplete history: nothing replayed, every held frame sent, continue before it."""
    resume = Resume(Position("old", 500), limit=1 << 20)
    resume.hold(3, b"live-3")
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
    resume.hold(1, b"12345")
    with pytest.raises(Overflow):
        resume.hold(2, b"1234567")
    assert not resume.holding


def test_over_sse_the_outcome_is_an_event_with_the_position_as_its_id() -> None:
    """The SSE encoding carries the outcome as ``event: recovery`` with ``id:``."""
    resume = Resume(Position(EPOCH, 3), limit=100)
    [outcome] = resume.seam(Recovery([]), None, Encoding.SSE)
    assert outcome.startswith(b"id: e1:3\nevent: recovery\n")
