"""When a publish is sent again, and after how long: one policy for the sync and async clients.

Retried: ``503 broker_unavailable`` (nothing was published) and a connection
that could not be made (nothing was sent).  Retried only when the publish
carries an ``Idempotency-Key``: a connection that broke after the request was
sent (the server died mid-publish, a timeout) and ``504
publish_outcome_unknown``: either may have published, and only the key makes
the server answer a second attempt with the first one's position instead of
publishing again.  Nothing else is retried: a 4xx would be refused again.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import BrokerUnavailable, ChannelsError, ConnectionFailed, PublishOutcomeUnknown


@dataclass(frozen=True)
class Retry:
    """How often and how long to retry: capped exponential backoff with full jitter.

    :param attempts: retries after the first try (0: never retry).
    :param backoff: the first delay's upper bound, in seconds; it doubles per retry.
    :param cap: no delay is longer than this (nor is a server's ``Retry-After`` followed past it).
    """

    attempts: int = 3
    backoff: float = 0.1
    cap: float = 2.0

    def delays(self) -> Iterator[float]:
        """The upper bound of each retry's delay, in order (``attempts`` of them)."""
        for attempt in range(self.attempts):
            yield min(self.cap, self.backoff * 2**attempt)

    def delay(self, bound: float, error: ChannelsError) -> float:
        """How long to wait before the next try: jittered, at least the server's ``Retry-After``."""
        # Full jitter spreads the retries of many publishers that failed together.
        wait = random.uniform(0, bound)
        if isinstance(error, BrokerUnavailable) and error.retry_after is not None:
            wait = max(wait, error.retry_after)
        return min(wait, self.cap)


#: Never retry: for callers that want every failure at once.
NO_RETRY = Retry(attempts=0)


def retryable(error: ChannelsError, keyed: bool) -> bool:
    """Whether a publish that failed with ``error`` may be sent again (``keyed``: it has a key)."""
    if isinstance(error, BrokerUnavailable):
        return True
    if isinstance(error, ConnectionFailed):
        return keyed or not error.sent
    return isinstance(error, PublishOutcomeUnknown) and keyed
