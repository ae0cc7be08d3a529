"""brokers/partitioned_publish.py: one request's outcome from its partitions' outcomes (pure)."""

from __future__ import annotations

from tornado_channels.brokers.base import (
    BrokerUnavailable,
    IdempotencyConflict,
    PublishOutcomeUnknown,
)
from tornado_channels.brokers.partitioned_publish import combine
from tornado_channels.core.publication import Position, Receipt


def at(partition: int, *seqs: int) -> list[Position]:
    return [Position(f"p{partition}", seq) for seq in seqs]


def test_a_publication_in_one_partition_gets_that_partitions_position() -> None:
    """Two publications to partition 3: their two positions there, in order."""
    outcome = combine([[3], [3]], {3: Receipt(at(3, 10, 11))})
    assert outcome == Receipt(at(3, 10, 11))


def test_a_root_publish_is_answered_with_its_position_in_its_first_partition() -> None:
    """A publish copied into partitions 0..2 answers partition 0's position, not a copy's."""
    results = {p: Receipt(at(p, 5)) for p in range(3)}
    assert combine([[0, 1, 2]], results) == Receipt(at(0, 5))


def test_positions_follow_each_partitions_own_count() -> None:
    """A root publish then a channel of partition 1: the channel's position is partition 1's 2nd."""
    results = {0: Receipt(at(0, 5)), 1: Receipt(at(1, 8, 9))}
    assert combine([[0, 1], [1]], results) == Receipt([*at(0, 5), *at(1, 9)])


def test_a_replay_is_a_replay_only_where_every_partition_replayed() -> None:
    """One partition published anew: the request is not a replay."""
    replayed = {0: Receipt(at(0, 1), True), 1: Receipt(at(1, 1), True)}
    assert combine([[0], [1]], replayed) == Receipt([*at(0, 1), *at(1, 1)], True)
    partly = {0: Receipt(at(0, 1), True), 1: Receipt(at(1, 1), False)}
    outcome = combine([[0], [1]], partly)
    assert isinstance(outcome, Receipt)
    assert not outcome.replayed


def test_a_failure_in_some_partitions_only_is_an_unknown_outcome() -> None:
    """Published in part: unknown (a retry with the key completes it), naming the failure."""
    outcome = combine([[0], [1]], {0: Receipt(at(0, 1)), 1: BrokerUnavailable("master down")})
    assert isinstance(outcome, PublishOutcomeUnknown)
    assert "master down" in str(outcome)


def test_a_failure_everywhere_is_that_failure() -> None:
    """Nothing published anywhere: the partitions' own error, as it is."""
    down = BrokerUnavailable("down")
    assert combine([[0], [1]], {0: down, 1: BrokerUnavailable("down too")}) is down


def test_a_reused_key_anywhere_is_a_conflict_not_an_unknown() -> None:
    """An idempotency conflict in one partition answers the whole request with it."""
    conflict = IdempotencyConflict("key reused")
    assert combine([[0], [1]], {0: Receipt(at(0, 1)), 1: conflict}) is conflict
