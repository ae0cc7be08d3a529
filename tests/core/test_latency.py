"""The latency histogram the node keeps: plain counts, cumulative when read (pure)."""

from __future__ import annotations

from tornado_channels.core.latency import LatencyHistogram


def test_observations_fall_in_the_first_bucket_at_or_above_them() -> None:
    """A value on a bound counts in that bound's bucket; cumulative counts include all below."""
    histogram = LatencyHistogram([0.1, 1.0])
    for value in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(value)
    assert histogram.cumulative() == [(0.1, 2), (1.0, 3), (float("inf"), 4)]
    assert histogram.count == 4
    assert abs(histogram.total - 3.65) < 1e-9


def test_an_empty_histogram_reads_as_zeros() -> None:
    """Before any observation every bucket is zero."""
    assert LatencyHistogram([1.0]).cumulative() == [(1.0, 0), (float("inf"), 0)]
