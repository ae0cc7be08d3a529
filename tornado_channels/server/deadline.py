"""One connection's deadline (idle, body, linger), kept lazily.

A kept-alive connection moves its deadline later twice per request (the
body's, then the idle one).  A timer made and cancelled each time was
measurable on a POST, so moving a deadline later only writes it down: the
timer already set fires first, finds the deadline moved, and sets itself
again for the rest.  Only a deadline moved earlier replaces the timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    """What a :class:`Deadline` needs of its event loop."""

    def time(self) -> float:
        """The loop's clock, in seconds."""

    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        """Call ``callback`` at ``when`` on the loop's clock."""


class Deadline:
    """At most one callback due at one time; setting it again replaces it."""

    __slots__ = ("_callback", "_clock", "_timer", "_when")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None
        self._when = 0.0
        self._callback: Callable[[], None] | None = None

    def set(self, delay: float, callback: Callable[[], None]) -> None:
        """Call ``callback`` ``delay`` seconds from now, instead of what was due; never if <= 0."""
        if delay <= 0:
            self.cancel()
            return
        when = self._clock.time() + delay
        self._when = when
        self._callback = callback
        timer = self._timer
        if timer is not None:
            if timer.when() <= when:
                return  # It fires first, and sets itself again for the rest.
            timer.cancel()
        self._timer = self._clock.call_at(when, self._ring)

    def disarm(self) -> None:
        """Nothing due for now (a timer still set will find nothing to do)."""
        self._callback = None

    def cancel(self) -> None:
        """Nothing due, and no timer left on the loop."""
        self._callback = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _ring(self) -> None:
        self._timer = None
        callback = self._callback
        if callback is None:
            return
        if self._when > self._clock.time():
            self._timer = self._clock.call_at(self._when, self._ring)
            return
        self._callback = None
        callback()
