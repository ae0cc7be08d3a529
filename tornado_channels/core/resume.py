"""The recovery seam: resuming a subscriber from a position, with no gap and no duplicate (pure).

A subscriber that resumes from ``since`` is subscribed first, so nothing
published from then on can pass it by; but what it missed must reach it
before what arrives live.  So from the moment it subscribes, live frames are
*held* (:meth:`Resume.hold`); then the history after ``since`` is read, and
:meth:`Resume.seam` gives the frames to send, in order: the replayed
messages, the outcome, then the held frames the replay did not already send.

The outcome says where the client should continue from: after the last
replayed message; or, when the history cannot cover what it missed (its
position trimmed, expired, or from a lost epoch), just before the first live
frame it is about to get (or the head, when none is held) since its own
position is useless now.
"""

from __future__ import annotations

from .frames import Encoding, encode_for, outcome_for
from .publication import Position, Recovery


class Overflow(Exception):
    """More was held during a recovery than the subscriber may have unread."""


class Resume:
    """One subscriber's recovery from ``since``; holds live frames until :meth:`seam`.

    ``limit`` bounds the bytes held, as the hub bounds what a subscriber may
    leave unread: past it, :meth:`hold` raises :class:`Overflow`.
    """

    __slots__ = ("_held", "_held_bytes", "limit", "since")

    def __init__(self, since: Position, limit: int) -> None:
        self.since = since
        self.limit = limit
        # Live frames that arrived while recovering: (seq, frame); None once released.
        self._held: list[tuple[int, bytes]] | None = []
        self._held_bytes = 0

    @property
    def holding(self) -> bool:
        """Whether live frames are still held back (the seam has not been sent)."""
        return self._held is not None

    def hold(self, seq: int, frame: bytes) -> bool:
        """Hold back a live frame of message ``seq``; False once released (send it at once)."""
        held = self._held
        if held is None:
            return False
        held.append((seq, frame))
        self._held_bytes += len(frame)
        if self._held_bytes > self.limit:
            self._held = None  # Nothing more is held: the subscriber is done for.
            raise Overflow(f"more than {self.limit} bytes arrived while recovering")
        return True

    def seam(self, recovery: Recovery, head: Position | None, encoding: Encoding) -> list[bytes]:
        """The frames to send, in order, and release what is held.

        ``head`` (the latest position, or None) is where to continue from when
        the recovery is incomplete and nothing is held.
        """
        since = self.since
        frames: list[bytes] = []
        last = since.seq
        for publication in recovery.publications:
            position = publication.position
            if position is not None and position.seq > last:
                frames.append(
                    encode_for(
                        encoding, str(position), publication.payload, str(publication.target)
                    )
                )
                last = position.seq
        held, self._held = self._held or [], None
        if recovery.complete:
            resume_from = Position(since.epoch, last)
        else:
            # Nothing was replayed, so every held frame is new to the client,
            # whatever its number (a new epoch starts again at 1).
            last = -1
            start = head if head is not None else since
            resume_from = Position(start.epoch, held[0][0] - 1) if held else start
        outcome: dict[str, object] = {
            "recovered": recovery.complete,
            "missed": len(recovery.publications),
            "position": str(resume_from),
        }
        if not recovery.complete:
            outcome["reason"] = recovery.reason
        frames.append(outcome_for(encoding, **outcome))
        # The seam: what the history already sent is not sent twice.
        frames += [frame for seq, frame in held if seq > last]
        return frames
