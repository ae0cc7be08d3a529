"""The recovery seam: resuming a subscriber from a position, with no gap and no duplicate (pure).

A subscriber that resumes from ``since`` is subscribed first, so nothing
published from then on can pass it by; but what it missed must reach it
before what arrives live.  So from the moment it subscribes, live frames are
*held* (:meth:`Resume.take`); then the history after ``since`` is read, and
:meth:`Resume.seam` gives the frames to send, in order: the replayed
messages, the outcome, then the held frames the replay did not already send.

The seam is *guarded* after that, until the first live frame past it.  On
Redis the history read and the live (pub/sub) copy of a message come back
on two different connections: the script that publishes writes the stream
entry and PUBLISHes in one step, so a read issued after it returns the
message while its pub/sub copy may still be in a socket buffer or in the
listener's hands.  That copy then reaches the subscriber *after* the seam,
where releasing held frames by number no longer sees it.  So the seam keeps
its floor (the position the outcome named) and drops live frames at or
below it, as centrifuge drops a publication whose offset is at or below the
recovered top.  The guard can end at the first frame above the floor: a
subscriber's live frames come from one sequence on one connection (one
partition's link), in publish order, so nothing at or below the floor can
follow one above it.  Only a history that restarts its numbering while
subscribers stay connected (its keys deleted under a live server) could
bring a number below the floor again; the guard, short-lived, leaves that
window as small as the next message.

A *fresh* subscriber (one that asked for positions without having one)
resumes from the head it was shown before subscribing: its outcome comes
first, naming that head, and what was published since follows it as
ordinary messages.

The outcome says where the client should continue from: after the last
replayed message; or, when the history cannot cover what it missed (its
position trimmed, expired, or from a lost epoch), just before the first live
frame it is about to get (or the head, when none is held) since its own
position is useless now.

Frames without a number (``UNNUMBERED``: presence events) are held like the
others and always sent: no replay covers them.
"""

from __future__ import annotations

from .frames import Encoding, encode_for, outcome_for
from .publication import Position, Recovery


class Overflow(Exception):
    """More was held during a recovery than the subscriber may have unread."""


#: The number of a frame that is no publication (a presence event): never dropped at a seam.
UNNUMBERED = 0


class Resume:
    """One subscriber's recovery from ``since``; holds live frames until :meth:`seam`.

    ``limit`` bounds the bytes held, as the hub bounds what a subscriber may
    leave unread: past it, :meth:`take` raises :class:`Overflow`.  ``fresh``
    marks a subscriber that never had a position: ``since`` is the head it
    was shown, and its outcome comes before anything else.
    """

    __slots__ = ("_floor", "_held", "_held_bytes", "fresh", "limit", "since")

    def __init__(self, since: Position, limit: int, *, fresh: bool = False) -> None:
        self.since = since
        self.limit = limit
        self.fresh = fresh
        # Live frames that arrived while recovering: (seq, frame); None once released.
        self._held: list[tuple[int, bytes]] | None = []
        self._held_bytes = 0
        # After the seam, the number at or below which a late live copy is
        # dropped (see the module's docstring); None when nothing is guarded.
        self._floor: int | None = None

    @property
    def holding(self) -> bool:
        """Whether live frames are still held back (the seam has not been sent)."""
        return self._held is not None

    @property
    def active(self) -> bool:
        """Whether live frames must still pass :meth:`take` (held, or checked against the seam)."""
        return self._held is not None or self._floor is not None

    def take(self, seq: int, frame: bytes) -> bool:
        """Offer a live frame of message ``seq``: True if it is held or dropped, False to send it.

        Before the seam it is held.  After it, a frame at or below the
        seam's floor is a late copy of what the client already has, and is
        dropped; the first one above it ends the guard.
        """
        held = self._held
        if held is not None:
            held.append((seq, frame))
            self._held_bytes += len(frame)
            if self._held_bytes > self.limit:
                self._held = None  # Nothing more is held: the subscriber is done for.
                raise Overflow(f"more than {self.limit} bytes arrived while recovering")
            return True
        floor = self._floor
        if floor is None or seq == UNNUMBERED:
            return False
        if seq <= floor:
            return True
        self._floor = None
        return False

    def seam(
        self,
        recovery: Recovery,
        head: Position | None,
        encoding: Encoding,
        *,
        one_sequence: bool = True,
    ) -> list[bytes]:
        """The frames to send, in order, and release what is held.

        ``head`` (the latest position, or None) is where to continue from when
        the recovery is incomplete and nothing is held.  ``one_sequence``
        False says the target's messages are numbered by several sequences
        (the root on a partitioned history): their numbers cannot be
        compared, so nothing is dropped by number.
        """
        since = self.since
        replayed: list[bytes] = []
        last = since.seq
        for publication in recovery.publications:
            position = publication.position
            if position is not None and position.seq > last:
                replayed.append(
                    encode_for(
                        encoding, str(position), publication.payload, str(publication.target)
                    )
                )
                last = position.seq
        held, self._held = self._held or [], None
        numbered = [seq for seq, _ in held if seq != UNNUMBERED]
        floor: int | None
        if recovery.complete:
            resume_from = Position(since.epoch, last)
            floor = last
        else:
            # Nothing was replayed, so every held frame is new to the client,
            # whatever its number (a new epoch starts again at 1).
            replayed = []
            start = head if head is not None else since
            resume_from = Position(start.epoch, numbered[0] - 1) if numbered else start
            # The head was read after subscribing: a late copy at or below it
            # would step back past the position just given.  Without a head,
            # ``since`` may be from a lost epoch: nothing can be dropped.
            floor = resume_from.seq if numbered or head is not None else None
        if not one_sequence:
            floor = None
        if self.fresh and recovery.complete:
            # Its first frame is the head it was shown; what followed is live to it.
            frames = [outcome_for(encoding, recovered=True, missed=0, position=str(since))]
            frames += replayed
        else:
            outcome: dict[str, object] = {
                "recovered": recovery.complete,
                "missed": len(replayed),  # Nothing is replayed from an incomplete history.
                "position": str(resume_from),
            }
            if not recovery.complete:
                outcome["reason"] = recovery.reason
            frames = [*replayed, outcome_for(encoding, **outcome)]
        # The seam: what the history already sent is not sent twice.
        if floor is None:
            frames += [frame for _, frame in held]
        else:
            frames += [frame for seq, frame in held if seq > floor or seq == UNNUMBERED]
            if not numbered or numbered[-1] <= floor:
                # No live frame past the floor yet: a late copy may still come.
                self._floor = floor
        return frames
