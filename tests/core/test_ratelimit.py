"""The token bucket behind the per-client rate limit (pure: time is passed in)."""

from __future__ import annotations

from tornado_channels.core.ratelimit import TokenBucket


def test_a_full_bucket_allows_a_burst_then_refuses() -> None:
    """A burst of exactly ``burst`` events passes at once; the next one is refused."""
    bucket = TokenBucket(rate=1, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]


def test_tokens_come_back_at_the_rate() -> None:
    """After an empty bucket, one event per 1/rate seconds passes again."""
    bucket = TokenBucket(rate=2, burst=1, now=0.0)
    assert bucket.take(0.0)
    assert not bucket.take(0.1)
    assert bucket.take(0.6)


def test_refill_never_exceeds_the_burst() -> None:
    """A long quiet spell refills to ``burst``, not beyond."""
    bucket = TokenBucket(rate=10, burst=2, now=0.0)
    assert [bucket.take(100.0) for _ in range(3)] == [True, True, False]


def test_rate_zero_means_no_limit() -> None:
    """With rate 0 every event passes."""
    bucket = TokenBucket(rate=0, burst=1, now=0.0)
    assert all(bucket.take(0.0) for _ in range(1000))
