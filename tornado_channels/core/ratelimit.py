"""A token bucket for what one client may send (pure: the caller passes the time)."""

from __future__ import annotations


class TokenBucket:
    """``rate`` events per second on average, with bursts of up to ``burst``.

    A rate of 0 means no limit.
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._tokens = self.burst
        self._last = now

    def take(self, now: float) -> bool:
        """Spend one token at time ``now``; False when the bucket is empty."""
        if not self.rate:
            return True
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
