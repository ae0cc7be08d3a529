"""The Redis broker: Redis pub/sub carries every publication between processes.

Each process subscribes (plain channels, never a pattern, so no character in
a channel name is special) to one Redis channel per local channel and one
per subtree containing it, in that channel's partition (see keys.py), so a
process receives only what its subscribers need.  Subscriptions ride on
:class:`~tornado_channels.brokers.link.Link` objects, which reconnect, probe
and repair themselves: one for a standalone Redis or Sentinel's master, one
per partition on a Redis Cluster (sharded: ``SSUBSCRIBE``, each on the
master of its partition's slot).

Publishing records history atomically (redis_history.py).  It is never
retried blindly; a publish with an idempotency key may be sent again safely,
and one that Redis refused because it went to the wrong master (``MOVED``)
is sent again to the right one, as it was not run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..core.channels import Subtree, Target
from ..core.history import HISTORY_AGE, HISTORY_SIZE, check_history
from ..core.idempotency import IDEMPOTENCY_TTL, Idempotency
from ..core.partitions import one_sequence
from ..core.presence import PresenceTally
from ..core.publication import (
    MalformedEnvelope,
    Position,
    Publication,
    Receipt,
    Recovery,
    decode,
)
from .base import (
    Broker,
    BrokerEvents,
    BrokerUnavailable,
    IdempotencyConflict,
    PublishError,
    PublishOutcomeUnknown,
)
from .coalescer import PublishCoalescer, Request
from .events import EventLog
from .keys import KeyLayout
from .link import Link
from .pipe import Pipes
from .presence import PresenceStore
from .redis_events import RedisEventLog
from .redis_history import Group, RedisHistory, ReplicasBehind
from .redis_presence import PRESENCE_TTL, RedisPresence
from .topology import Cluster, SentinelMaster, Standalone, Topology, redact_url

log = logging.getLogger("tornado_channels.redis")

T = TypeVar("T")

#: Defaults (the command line's too: see settings.py).
PREFIX = "tornado_channels:"
TIMEOUT = 2.0
PROBE_INTERVAL = 2.0
CHECK_INTERVAL = 30.0
#: History partitions on a Redis Cluster by default.
CLUSTER_PARTITIONS = 16
#: Seconds a subtree stays watched unless its watchers' process renews it (every third).
WATCH_TTL = 30.0
#: Why a subscriber of the root cannot resume on a cluster.
ROOT_SPANS_PARTITIONS = (
    "a subscription to / spans every partition of the cluster: it cannot resume from one position"
)

__all__ = ["CHECK_INTERVAL", "PREFIX", "PROBE_INTERVAL", "TIMEOUT", "RedisBroker", "redact_url"]


class RedisBroker(Broker):
    """A :class:`~tornado_channels.brokers.base.Broker` over Redis pub/sub.

    :param url: ``redis://[[user]:password@]host[:port][/db]`` (or ``rediss://``);
        with ``sentinels``, only its credentials, db and TLS are used; with
        ``cluster``, any node of the cluster.
    :param prefix: namespace for every Redis key and channel this broker uses.
    :param sentinels: ``(host, port)`` of each Sentinel to ask for ``sentinel_master``.
    :param cluster: ``url`` is a Redis Cluster: shard channels and partitions.
    :param partitions: history partitions (cluster only; every process must agree).
    :param command_timeout: how long a publish may take before its outcome is unknown.
    :param wait_replicas: acknowledge a publish once this many replicas have it.
    :param idempotency_ttl: seconds an idempotency key is remembered.
    :param probe_interval: silence after which a link sends a probe.
    :param probe_timeout: how long a probe may take to come back.
    :param check_interval: seconds between self-checks of the subscriptions
        Redis holds for this process against those it should (0: never).
    :param presence_ttl: seconds a process's presence counts unless renewed
        (it is renewed every third of it, so a dead process stops counting
        within this long).
    """

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = PREFIX,
        sentinels: Sequence[tuple[str, int]] = (),
        sentinel_master: str = "mymaster",
        cluster: bool = False,
        partitions: int | None = None,
        connect_timeout: float = 2.0,
        command_timeout: float = TIMEOUT,
        subscribe_timeout: float = 5.0,
        probe_interval: float = PROBE_INTERVAL,
        probe_timeout: float = TIMEOUT,
        backoff_base: float = 0.1,
        backoff_cap: float = 1.0,
        history_size: int = HISTORY_SIZE,
        history_age: float = HISTORY_AGE,
        idempotency_ttl: float = IDEMPOTENCY_TTL,
        wait_replicas: int = 0,
        check_interval: float = CHECK_INTERVAL,
        presence_ttl: float = PRESENCE_TTL,
    ) -> None:
        if cluster and sentinels:
            raise ValueError("a Redis Cluster is not reached through Sentinel")
        check_history(history_size, history_age)
        self.url = url
        count = (partitions or CLUSTER_PARTITIONS) if cluster else 1
        self.partitions = count
        self.layout = KeyLayout(prefix.encode("utf-8"), count)
        self.topology: Topology
        if cluster:
            self.topology = Cluster(url, self.layout, connect_timeout, command_timeout)
        elif sentinels:
            self.topology = SentinelMaster(
                url, list(sentinels), sentinel_master, connect_timeout, command_timeout
            )
        else:
            self.topology = Standalone(url, connect_timeout, command_timeout)
        #: "standalone", "sentinel" or "cluster".
        self.mode = self.topology.mode
        self.history = RedisHistory(
            self.layout,
            size=history_size,
            age=history_age,
            idempotency_ttl=idempotency_ttl,
            sharded=self.topology.sharded,
            wait_replicas=wait_replicas,
            # WAIT ends before the command timeout: beyond it, 504 (not a hang).
            wait_timeout=command_timeout * 0.8,
        )
        # The publish script's connections (see pipe.py), one per master.
        self._pipes = Pipes()
        node = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}".encode()
        self.node_id = node
        self.presence_ttl = presence_ttl
        # One link per partition on a cluster (each on its slot's master); one otherwise.
        self._links: list[Link] = [
            Link(
                # Bound to the partition now (a lambda would see the loop's last value).
                partial(self.topology.describe, partition),
                partial(self.topology.open, partition),
                self.layout.control(partition, node),
                sharded=self.topology.sharded,
                on_message=partial(self._received, partition),
                on_state=partial(self._link_changed, partition),
                stray_pattern=self.layout.base(partition) + b"*",
                probe_interval=probe_interval,
                probe_timeout=probe_timeout,
                check_interval=check_interval,
                subscribe_timeout=subscribe_timeout,
                backoff_base=backoff_base,
                backoff_cap=backoff_cap,
            )
            for partition in range(count if cluster else 1)
        ]
        self._events: BrokerEvents | None = None
        self._coalescer = PublishCoalescer(self._submit)
        # The last publication received from each partition (see _received).
        self._last: list[Position | None] = [None] * count
        # Partition -> watched subtree prefix -> local subscribers of it.
        self._watched: dict[int, dict[str, int]] = {}
        self._renewer: asyncio.Task[None] | None = None
        # Where joins and leaves arriving on a link go (see presence()).
        self._presence: RedisPresence | None = None

    # Broker interface

    def presence(self, tally: PresenceTally) -> PresenceStore:
        """Every process's presence, summed in Redis (see redis_presence.py)."""
        store = RedisPresence(
            tally,
            self.layout,
            self.node_id,
            self._reading,
            ttl=self.presence_ttl,
            sharded=self.topology.sharded,
            acquire=lambda partition, keys: self._link(partition).acquire(keys),
            release=lambda partition, keys: self._link(partition).release(keys),
            confirm=lambda partition, keys: self._link(partition).confirm(keys),
        )
        self._presence = store
        return store

    def event_log(self, presence: PresenceStore, max_backlog: int) -> EventLog:
        """Every process's events in Redis, joins and leaves by presence.lua (redis_events.py).

        A partition's lease lasts half the presence TTL: a dead holder's
        partition is taken over while its users' leaves are being written.
        """
        if isinstance(presence, RedisPresence):
            presence.events_cap = max_backlog
        return RedisEventLog(
            self.layout,
            self.node_id.decode(),
            self._reading,
            max_backlog=max_backlog,
            lease=self.presence_ttl / 2,
        )

    def describe(self) -> str:
        """The mode and where its master (or masters) are."""
        if self.mode == "cluster":
            return f"redis cluster via {redact_url(self.url)}, {self.partitions} partitions"
        return f"redis {self.mode}, {self.topology.describe(0)}"

    @property
    def connected(self) -> bool:
        """True while every link holds its subscriptions (every needed master is reachable)."""
        return all(link.connected for link in self._links)

    @property
    def reconnects(self) -> int:  # type: ignore[override]
        """Times a link reconnected after losing its connection."""
        return sum(link.reconnects for link in self._links)

    @property
    def repairs(self) -> int:  # type: ignore[override]
        """Subscriptions self-checks found Redis holding wrongly, and repaired."""
        return sum(link.repairs for link in self._links)

    async def start(self, events: BrokerEvents) -> None:
        """Start every link; each connects (and reconnects) on its own."""
        self._events = events
        for link in self._links:
            link.start()
        self._renewer = asyncio.ensure_future(self._renew_watches())

    async def stop(self) -> None:
        """Stop every link and publish; close every connection."""
        if self._renewer is not None:
            self._renewer.cancel()
        await asyncio.gather(
            *(link.stop() for link in self._links),
            self._coalescer.stop(),
            *([self._renewer] if self._renewer is not None else []),
            return_exceptions=True,
        )
        self._pipes.close()
        await self.topology.close()
        events, self._events = self._events, None
        if events is not None:
            events.broker_state_changed(False)

    async def publish(
        self, publication: Publication, idempotency: Idempotency | None = None
    ) -> Receipt:
        """Publish once, never retried blindly; see :class:`~.base.PublishOutcomeUnknown`.

        Publishes made in the same pass of the event loop (concurrent POSTs,
        say) go to Redis together, in order, as one script call per
        partition: one round trip for all of them instead of one each.
        """
        self._require_connected()
        return await self._coalescer.publish(publication, idempotency)

    async def publish_many(
        self, publications: Sequence[Publication], idempotency: Idempotency | None = None
    ) -> Receipt:
        """Publish all in one atomic script call per partition, never retried blindly."""
        self._require_connected()
        return await self.send(publications, idempotency)

    async def send(
        self, publications: Sequence[Publication], idempotency: Idempotency | None = None
    ) -> Receipt:
        """:meth:`publish_many` without the subscriptions: for a broker never started.

        A process that only publishes (the client's ``RedisPublisher``) holds
        no pub/sub link, so it cannot wait for one to be connected: Redis's
        own errors say whether it is reachable.
        """
        if not publications:
            return Receipt([])
        result = (await self._submit([(publications, idempotency)]))[0]
        if isinstance(result, PublishError):
            raise result
        return result

    async def head(self, target: Target) -> Position:
        """The latest position of the target's partition (see redis_history.py).

        A subtree is watched in the same step, so that everything below it
        after that position is recorded for it.
        """
        self._require_connected()
        if isinstance(target, Subtree):
            return await self._watch(target)
        partition = self.layout.home(target)
        return await self._reading(partition, lambda client: self.history.head(client, partition))

    def _watch_in(
        self, partition: int, prefixes: list[str], client: Redis
    ) -> Awaitable[tuple[Position, list[bool]]]:
        """The watch of subtrees ``prefixes`` in ``partition``, on that partition's ``client``."""
        return self.history.watch(client, partition, prefixes, WATCH_TTL)

    async def _watch(self, subtree: Subtree) -> Position:
        """Watch ``subtree`` in every partition it needs; its home partition's head."""
        head: Position | None = None
        home = self.layout.home(subtree)
        for partition, _ in self.layout.subscriptions(subtree):
            position, _lapsed = await self._reading(
                partition,
                partial(self._watch_in, partition, [subtree.prefix]),
            )
            if partition == home:
                head = position
        assert head is not None
        return head

    async def recover(self, target: Target, since: Position) -> Recovery:
        """What reached ``target`` after ``since``, from Redis's history."""
        self._require_connected()
        if not one_sequence(target, self.partitions):
            # One position cannot say where a client is in 16 sequences.
            return Recovery([], False, ROOT_SPANS_PARTITIONS)
        partition = self.layout.home(target)
        return await self._reading(
            partition, lambda client: self.history.recover(client, target, since)
        )

    def subscribe(self, target: Target) -> None:
        """Take the target's keys on its partitions' links (and watch a subtree)."""
        for partition, keys in self.layout.subscriptions(target):
            self._link(partition).acquire(keys)
        if isinstance(target, Subtree):
            for partition, _ in self.layout.subscriptions(target):
                watched = self._watched.setdefault(partition, {})
                watched[target.prefix] = watched.get(target.prefix, 0) + 1

    async def confirm(self, target: Target) -> None:
        """Wait for Redis to acknowledge the subscription of each of the target's keys.

        A subtree is watched first (so every publish below it from now on is
        relayed and recorded for it), then subscribed to.
        """
        subscriptions = self.layout.subscriptions(target)
        if not all(self._link(partition).connected for partition, _ in subscriptions):
            raise BrokerUnavailable("not connected to Redis")
        if isinstance(target, Subtree):
            await self._watch(target)
        for partition, keys in subscriptions:
            link = self._link(partition)
            confirmed = await link.confirm(keys)
            if confirmed is None:
                raise BrokerUnavailable("Redis did not confirm the subscription in time")
            if not confirmed:
                raise BrokerUnavailable("the Redis connection was lost while subscribing")

    def unsubscribe(self, target: Target) -> None:
        """Release the target's keys on its partitions' links."""
        for partition, keys in self.layout.subscriptions(target):
            self._link(partition).release(keys)
            if isinstance(target, Subtree):
                watched = self._watched.get(partition, {})
                count = watched.get(target.prefix, 0) - 1
                if count > 0:
                    watched[target.prefix] = count
                else:
                    watched.pop(target.prefix, None)

    async def _renew_watches(self) -> None:
        """Keep this process's subtrees watched; tell the node of any watch that lapsed."""
        while True:
            await asyncio.sleep(WATCH_TTL / 3)
            for partition, watched in list(self._watched.items()):
                prefixes = list(watched)
                if not prefixes or not self._link(partition).connected:
                    continue
                try:
                    _head, lapsed = await self._reading(
                        partition,
                        partial(self._watch_in, partition, prefixes),
                    )
                except BrokerUnavailable as exc:
                    log.debug("renewing subtree watches failed: %s", exc)
                    continue
                for prefix, gone in zip(prefixes, lapsed, strict=True):
                    if gone and prefix in watched and self._events is not None:
                        log.warning(
                            "the watch of subtree %r/ lapsed: closing its subscribers", prefix
                        )
                        self._events.subscription_lost(Subtree(prefix))

    # Publishing

    async def _submit(self, requests: Sequence[Request]) -> list[Receipt | PublishError]:
        """Publish requests (each one or more publications), a script call per partition.

        Each request is all or none within a partition.  A request that spans
        partitions (a publish to the root on a cluster, or a batch) is
        published in each concurrently; if some succeed and others fail, its
        outcome is partial, reported as unknown: a retry with the same
        idempotency key publishes exactly what is missing.
        """
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
        return [_combine(homes[i], results[i]) for i in range(len(requests))]

    async def _publish_partition(
        self,
        partition: int,
        parts: list[tuple[int, list[Publication]]],
        requests: Sequence[Request],
    ) -> list[Receipt | PublishError]:
        """One script call for ``partition``; a result per part, or the call's error for each."""
        groups = [Group(publications, requests[index][1]) for index, publications in parts]
        try:
            results = await self._command(
                partition,
                lambda client: self.history.publish(
                    client, partition, groups, self._pipes.of(client)
                ),
            )
        except PublishError as exc:
            return [type(exc)(*exc.args) for _ in parts]
        return [
            IdempotencyConflict(*result.args) if isinstance(result, Exception) else result
            for result in results
        ]

    async def _command(self, partition: int, run: Callable[[Redis], Awaitable[T]]) -> T:
        """Run a publish on ``partition``'s master, translating Redis's errors into the broker's."""
        try:
            return await self._routed(partition, run)
        except ReplicasBehind as exc:
            raise PublishOutcomeUnknown(
                f"published, but {exc}: a failover could lose it (retry with the same "
                "Idempotency-Key to wait again)"
            ) from exc
        except RedisTimeoutError as exc:
            raise PublishOutcomeUnknown(f"Redis did not answer the publish in time: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"Redis refused the publish: {exc}") from exc

    async def _reading(self, partition: int, run: Callable[[Redis], Awaitable[T]]) -> T:
        """Run a history read on ``partition``'s master."""
        try:
            return await self._routed(partition, run)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"Redis could not read the history: {exc}") from exc

    async def _routed(self, partition: int, run: Callable[[Redis], Awaitable[T]]) -> T:
        """Run on the master of ``partition``; once more after a ``MOVED`` (it did not run)."""
        for attempt in (0, 1):
            try:
                return await run(self.topology.client(partition))
            except ResponseError as exc:
                if attempt or not str(exc).startswith(("MOVED", "CLUSTERDOWN", "TRYAGAIN")):
                    raise
                await self.topology.refresh()
        raise AssertionError("unreachable")  # pragma: no cover

    def _require_connected(self) -> None:
        if not self.connected:
            raise BrokerUnavailable("not connected to Redis")

    # Links

    def _link(self, partition: int) -> Link:
        return self._links[partition if len(self._links) > 1 else 0]

    def _received(self, partition: int, key: bytes, data: bytes) -> None:
        if self._presence is not None and key.startswith(self.layout.presence_events(partition)):
            self._presence.received(data)
            return
        try:
            publication = decode(data, partition)
        except MalformedEnvelope as exc:
            log.warning("ignoring a malformed message on Redis channel %r: %s", key, exc)
            return
        # A publication reaches this process once per pub/sub channel it holds
        # that carries it (its channel's, a watched subtree's): the copies
        # follow each other on the link (one script sends them in a row), and
        # the hub finds every local subscriber from the first one.
        if publication.position == self._last[partition]:
            return
        self._last[partition] = publication.position
        if self._events is not None:
            self._events.received(publication)

    def _link_changed(self, partition: int, connected: bool) -> None:
        if self._events is None:
            return
        if len(self._links) == 1:
            self._events.broker_state_changed(connected)
        elif not connected:
            self._events.broker_state_changed(False, partition)
        elif self.connected:
            self._events.broker_state_changed(True, partition)


def _combine(
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
