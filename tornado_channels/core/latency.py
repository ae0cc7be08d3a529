"""A latency histogram as plain counts (pure): what the node keeps, rendered only when scraped."""

from __future__ import annotations

import bisect
from collections.abc import Iterable


class LatencyHistogram:
    """How many observations fell at or below each bound, their count and their sum.

    Observing is a bisect and three additions: cheap enough for every publish,
    with no metrics library on the path (metrics.py renders it at scrape time).
    """

    __slots__ = ("_counts", "bounds", "count", "total")

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        # One count per bound, plus one for what lies above them all.
        self._counts = [0] * (len(self.bounds) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        """Count one observation of ``value``."""
        self._counts[bisect.bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.total += value

    def cumulative(self) -> list[tuple[float, int]]:
        """(bound, observations at or below it) for each bound, then (inf, all of them)."""
        result = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self._counts, strict=True):
            running += count
            result.append((bound, running))
        return result
