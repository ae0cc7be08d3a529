"""server/deadline.py: one lazily kept deadline per connection, on a clock the test moves."""

from __future__ import annotations

from collections.abc import Callable

from tornado_channels.server.deadline import Deadline


class Timer:
    """What the clock hands out for a call: it can be cancelled, and says when it is due."""

    def __init__(self, when: float, callback: Callable[[], object]) -> None:
        self._when = when
        self.callback = callback
        self.cancelled = False

    def when(self) -> float:
        return self._when

    def cancel(self) -> None:
        self.cancelled = True


class Clock:
    """A loop's clock and timers, moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[Timer] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], object]) -> Timer:
        timer = Timer(when, callback)
        self.timers.append(timer)
        return timer

    def advance(self, to: float) -> None:
        """Move to ``to``, running every timer due by then, in order."""
        while True:
            due = [t for t in self.timers if not t.cancelled and t.when() <= to]
            if not due:
                break
            timer = min(due, key=Timer.when)
            self.timers.remove(timer)
            self.now = timer.when()
            timer.callback()
        self.now = to

    def pending(self) -> int:
        return sum(not t.cancelled for t in self.timers)


def deadline() -> tuple[Clock, Deadline, list[str]]:
    clock = Clock()
    return clock, Deadline(clock), []  # type: ignore[arg-type]


def test_a_deadline_calls_back_once_when_due() -> None:
    """A deadline set for 10 s calls back at 10 s, and only once."""
    clock, due, calls = deadline()
    due.set(10, lambda: calls.append("idle"))
    clock.advance(9.9)
    assert calls == []
    clock.advance(30)
    assert calls == ["idle"]


def test_moving_a_deadline_later_makes_no_new_timer() -> None:
    """Moving the deadline later keeps the one timer, which fires at the new time, not the old."""
    clock, due, calls = deadline()
    due.set(10, lambda: calls.append("first"))
    clock.advance(5)
    due.set(10, lambda: calls.append("second"))
    assert len(clock.timers) == 1
    clock.advance(14.9)
    assert calls == []
    clock.advance(15)
    assert calls == ["second"]


def test_moving_a_deadline_earlier_replaces_the_timer() -> None:
    """A deadline moved earlier fires at the earlier time; the later timer is cancelled."""
    clock, due, calls = deadline()
    due.set(10, lambda: calls.append("idle"))
    due.set(2, lambda: calls.append("linger"))
    assert clock.pending() == 1
    clock.advance(2)
    assert calls == ["linger"]
    clock.advance(20)
    assert calls == ["linger"]


def test_a_disarmed_deadline_never_calls_back_and_can_be_set_again() -> None:
    """Disarmed, nothing is called when the old timer fires; set again, the new one is."""
    clock, due, calls = deadline()
    due.set(10, lambda: calls.append("body"))
    due.disarm()
    clock.advance(11)
    assert calls == []
    due.set(1, lambda: calls.append("idle"))
    clock.advance(12)
    assert calls == ["idle"]


def test_cancelling_or_a_delay_of_zero_leaves_no_timer() -> None:
    """cancel() and set(0, ...) leave nothing on the loop, and nothing is called."""
    clock, due, calls = deadline()
    due.set(10, lambda: calls.append("x"))
    due.cancel()
    assert clock.pending() == 0
    due.set(10, lambda: calls.append("y"))
    due.set(0, lambda: calls.append("z"))
    assert clock.pending() == 0
    clock.advance(100)
    assert calls == []
