"""Publishing on Redis: requests split by partition, one script call per partition.

The Redis broker hands its publish requests here (through the coalescer, so
publishes made in the same pass of the loop travel together).  Each request
(one publication, or a batch) is all or none within a partition; a request
that spans partitions (the root on a cluster, a batch) is published in each
concurrently, and an outcome that is partial is reported as unknown, which a
retry with the same idempotency key completes exactly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..core.publication import Publication, Receipt
from .base import BrokerUnavailable, IdempotencyConflict, PublishError, PublishOutcomeUnknown
from .coalescer import Request
from .keys import KeyLayout
from .pipe import Pipes
from .redis_history import Group, RedisHistory, ReplicasBehind
from .topology import Topology

T = TypeVar("T")


class PartitionedPublish:
    """Publishes requests on the masters of their partitions, never retried blindly."""

    def __init__(self, topology: Topology, layout: KeyLayout, history: RedisHistory) -> None:
        self.topology = topology
        self.layout = layout
        self.history = history
        # The publish script's connections (see pipe.py), one per master.
        self.pipes = Pipes()

    async def __call__(self, requests: Sequence[Request]) -> list[Receipt | PublishError]:
        """Publish ``requests`` (each one or more publications): an outcome per request."""
        # Partition -> (request index, its publications there) in request order.
        plan: dict[int, list[tuple[int, list[Publication]]]] = {}
        # Request index -> per publication, the partitions it is written to.
        homes: list[list[Sequence[int]]] = []
        for index, (publications, _) in enumerate(requests):
            home: list[Sequence[int]] = []
            for publication in publications:
                partitions = self.layout.partitions_of(publication.target)
                home.append(partitions)
                for partition in partitions:
                    parts = plan.setdefault(partition, [])
                    if not parts or parts[-1][0] != index:
                        parts.append((index, []))
                    parts[-1][1].append(publication)
            homes.append(home)
        order = sorted(plan)
        if len(order) == 1:
            # The common case, one partition: no task to gather.
            outcomes = [await self._publish_partition(order[0], plan[order[0]], requests)]
        else:
            outcomes = await asyncio.gather(
                *(self._publish_partition(p, plan[p], requests) for p in order)
            )
        # Request index -> partition -> its receipt there, or the error.
        results: list[dict[int, Receipt | PublishError]] = [{} for _ in requests]
        for partition, outcome in zip(order, outcomes, strict=True):
            for (index, _), result in zip(plan[partition], outcome, strict=True):
                results[index][partition] = result
        return [combine(homes[i], results[i]) for i in range(len(requests))]

    def close(self) -> None:
        """Close the script's connections."""
        self.pipes.close()

    async def _publish_partition(
        self,
        partition: int,
        parts: list[tuple[int, list[Publication]]],
        requests: Sequence[Request],
    ) -> list[Receipt | PublishError]:
        """One script call for ``partition``; a result per part, or the call's error for each."""
        groups = [Group(publications, requests[index][1]) for index, publications in parts]

        def run(client: Redis) -> Awaitable[list[Receipt | IdempotencyConflict]]:
            return self.history.publish(client, partition, groups, self.pipes.of(client))

        try:
            results = await self._command(partition, run)
        except PublishError as exc:
            return [type(exc)(*exc.args) for _ in parts]
        return [
            IdempotencyConflict(*result.args) if isinstance(result, Exception) else result
            for result in results
        ]

    async def _command(self, partition: int, run: Callable[[Redis], Awaitable[T]]) -> T:
        """Run a publish on ``partition``'s master, translating Redis's errors into the broker's."""
        try:
            return await self.topology.routed(partition, run)
        except ReplicasBehind as exc:
            raise PublishOutcomeUnknown(
                f"published, but {exc}: a failover could lose it (retry with the same "
                "Idempotency-Key to wait again)"
            ) from exc
        except RedisTimeoutError as exc:
            raise PublishOutcomeUnknown(f"Redis did not answer the publish in time: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"Redis refused the publish: {exc}") from exc


def combine(
    homes: list[Sequence[int]], results: dict[int, Receipt | PublishError]
) -> Receipt | PublishError:
    """One request's outcome from its partitions' outcomes."""
    errors = [result for result in results.values() if isinstance(result, PublishError)]
    if errors:
        if len(errors) == len(results) or any(
            isinstance(error, IdempotencyConflict) for error in errors
        ):
            return errors[0]
        return PublishOutcomeUnknown(
            f"published in part: {errors[0]} (retry with the same Idempotency-Key)"
        )
    # Each publication's position in the first partition it went to (a root
    # publish has a copy, with its own number, in every other one).
    taken = dict.fromkeys(results, 0)
    positions = []
    for partitions in homes:
        first = results[partitions[0]]
        assert isinstance(first, Receipt)
        positions.append(first.positions[taken[partitions[0]]])
        for partition in partitions:
            taken[partition] += 1
    replayed = all(isinstance(r, Receipt) and r.replayed for r in results.values())
    return Receipt(positions, replayed)
