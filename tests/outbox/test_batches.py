"""The consumer's pure pieces: how a batch is cut, and how long it waits after failures."""

from __future__ import annotations

from tornado_channels.outbox.consumer import MAX_BACKOFF, MAX_BATCH_BYTES, backoff, cut_batch


def row(seq: int, size: int) -> tuple[int, int, str, bytes]:
    return (seq, seq, "a", b"x" * size)


def test_a_batch_is_cut_at_the_byte_limit_but_always_takes_one_row() -> None:
    """Rows up to MAX_BATCH_BYTES of payload go together; one larger row still goes alone."""
    small = [row(n, 1000) for n in range(10)]
    assert cut_batch(small) == small
    half = MAX_BATCH_BYTES // 2
    assert cut_batch([row(1, half), row(2, half), row(3, 1)]) == [row(1, half), row(2, half)]
    huge = [row(1, MAX_BATCH_BYTES * 3), row(2, 1)]
    assert cut_batch(huge) == huge[:1]


def test_backoff_doubles_from_a_tenth_of_a_second_and_is_capped() -> None:
    """0.1 s, 0.2 s, 0.4 s ... never more than MAX_BACKOFF, however many failures."""
    assert [backoff(n) for n in range(4)] == [0.1, 0.2, 0.4, 0.8]
    assert backoff(6) == MAX_BACKOFF
    assert backoff(10_000) == MAX_BACKOFF
