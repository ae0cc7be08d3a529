"""The Redis broker: Redis pub/sub carries every publication between processes.

Each process subscribes (plain channels, never a pattern, so no character in
a channel name is special) to one Redis channel per local channel and one
per subtree containing it, in that channel's partition (see keys.py), so a
process receives only what its subscribers need.  Subscriptions ride on
:class:`~tornado_channels.brokers.link.Link` objects, which reconnect, probe
and repair themselves: one for a standalone Redis or Sentinel's master, one
per partition on a Redis Cluster (sharded: ``SSUBSCRIBE``, each on the
master of its partition's slot).

Publishing records history atomically, one script call per partition
(partitioned_publish.py, redis_history.py).  It is never retried blindly;
a publish with an idempotency key may be sent again safely, and one that
Redis refused because it went to the wrong master (``MOVED``) is sent
again to the right one, as it was not run.
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
from redis.exceptions import RedisError

from ..core.channels import Subtree, Target
from ..core.history import check_history
from ..core.idempotency import Idempotency
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
from .base import Broker, BrokerEvents, BrokerUnavailable, PublishError
from .coalescer import PublishCoalescer
from .events import EventLog
from .keys import KeyLayout
from .links import Links
from .partitioned_publish import PartitionedPublish
from .presence import PresenceStore
from .redis_events import RedisEventLog
from .redis_history import RedisHistory
from .redis_presence import PRESENCE_EVENT, RedisPresence
from .settings import BrokerSettings, Reconnection
from .topology import Topology, redact_url, topology_for

log = logging.getLogger("tornado_channels.redis")

T = TypeVar("T")

#: Seconds a subtree stays watched unless its watchers' process renews it (every third).
WATCH_TTL = 30.0
#: Why a subscriber of the root cannot resume on a cluster.
ROOT_SPANS_PARTITIONS = (
    "a subscription to / spans every partition of the cluster: it cannot resume from one position"
)

__all__ = ["RedisBroker", "redact_url"]


class RedisBroker(Broker):
    """A :class:`~tornado_channels.brokers.base.Broker` over Redis pub/sub.

    Built from the broker's settings (settings.py: every default is there),
    or from a URL alone (``RedisBroker("redis://host:6379/0")``, the other
    settings their defaults).  Its parts, each in its own module:

    - :attr:`topology`: which master serves each partition (topology.py);
    - :attr:`links`: the pub/sub connections, by partition (links.py);
    - :attr:`history`: the scripts that publish and read history (redis_history.py);
    - the presence store and event log it makes on request (redis_presence.py,
      redis_events.py).

    :param reconnection: how connections are made and come back (tests shorten it).
    """

    kind = "redis"

    def __init__(
        self, settings: BrokerSettings | str, *, reconnection: Reconnection | None = None
    ) -> None:
        if isinstance(settings, str):
            settings = BrokerSettings(redis_url=settings)
        check_history(settings.history_size, settings.history_age)
        self.settings = settings
        #: Where the broker connects (with Sentinel, only credentials, db and TLS).
        self.url = settings.redis_url or "redis://"
        #: History partitions: the cluster's setting, else one.
        self.partitions = settings.redis_partitions if settings.redis_cluster else 1
        self.layout = KeyLayout(settings.redis_prefix.encode("utf-8"), self.partitions)
        reconnection = reconnection or Reconnection()
        self.topology: Topology = topology_for(settings, self.layout, reconnection)
        #: "standalone", "sentinel" or "cluster".
        self.mode = self.topology.mode
        self.history = RedisHistory(
            self.layout,
            size=settings.history_size,
            age=settings.history_age,
            idempotency_ttl=settings.idempotency_ttl,
            sharded=self.topology.sharded,
            wait_replicas=settings.redis_wait_replicas,
            # WAIT ends before the command timeout: beyond it, 504 (not a hang).
            wait_timeout=settings.redis_timeout * 0.8,
        )
        node = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}".encode()
        self.node_id = node
        self.links = Links(
            self.topology,
            self.layout,
            node,
            self,
            sharded=self.topology.sharded,
            settings=settings,
            reconnection=reconnection,
        )
        self._publish = PartitionedPublish(self.topology, self.layout, self.history)
        self._coalescer = PublishCoalescer(self._publish)
        self._events: BrokerEvents | None = None
        # The last publication received from each partition (see link_received).
        self._last: list[Position | None] = [None] * self.partitions
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
            ttl=self.settings.presence_ttl,
            sharded=self.topology.sharded,
            subscriptions=self.links,
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
            lease=self.settings.presence_ttl / 2,
        )

    def describe(self) -> str:
        """The mode and where its master (or masters) are."""
        if self.mode == "cluster":
            return f"redis cluster via {redact_url(self.url)}, {self.partitions} partitions"
        return f"redis {self.mode}, {self.topology.describe(0)}"

    @property
    def connected(self) -> bool:
        """True while every link holds its subscriptions (every needed master is reachable)."""
        return self.links.connected

    @property
    def reconnects(self) -> int:
        """Times a link reconnected after losing its connection."""
        return self.links.reconnects

    @property
    def repairs(self) -> int:
        """Subscriptions self-checks found Redis holding wrongly, and repaired."""
        return self.links.repairs

    async def start(self, events: BrokerEvents) -> None:
        """Start every link; each connects (and reconnects) on its own."""
        self._events = events
        self.links.start()
        self._renewer = asyncio.ensure_future(self._renew_watches())

    async def stop(self) -> None:
        """Stop every link and publish; close every connection."""
        if self._renewer is not None:
            self._renewer.cancel()
        await asyncio.gather(
            self.links.stop(),
            self._coalescer.stop(),
            *([self._renewer] if self._renewer is not None else []),
            return_exceptions=True,
        )
        self._publish.close()
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
        result = (await self._publish([(publications, idempotency)]))[0]
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
            self.links.acquire(partition, keys)
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
        if not all(self.links.of(partition).connected for partition, _ in subscriptions):
            raise BrokerUnavailable("not connected to Redis")
        if isinstance(target, Subtree):
            await self._watch(target)
        for partition, keys in subscriptions:
            confirmed = await self.links.confirm(partition, keys)
            if confirmed is None:
                raise BrokerUnavailable("Redis did not confirm the subscription in time")
            if not confirmed:
                raise BrokerUnavailable("the Redis connection was lost while subscribing")

    def unsubscribe(self, target: Target) -> None:
        """Release the target's keys on its partitions' links."""
        for partition, keys in self.layout.subscriptions(target):
            self.links.release(partition, keys)
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
                if not prefixes or not self.links.of(partition).connected:
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

    async def _reading(self, partition: int, run: Callable[[Redis], Awaitable[T]]) -> T:
        """Run a history read on ``partition``'s master."""
        try:
            return await self.topology.routed(partition, run)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"Redis could not read the history: {exc}") from exc

    def _require_connected(self) -> None:
        if not self.connected:
            raise BrokerUnavailable("not connected to Redis")

    # What the links hear (LinkListener)

    def link_received(self, partition: int, key: bytes, data: bytes) -> None:
        """A publication (or a presence event) arrived on ``partition``'s link."""
        if data[:1] == PRESENCE_EVENT:
            # Typed by its first byte: a join or leave that presence.lua published.
            if self._presence is not None:
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

    def link_changed(self, partition: int, connected: bool) -> None:
        """Tell the node: the whole broker (one link), or one partition of a cluster."""
        if self._events is None:
            return
        if self.links.single:
            self._events.broker_state_changed(connected)
        elif not connected:
            self._events.broker_state_changed(False, partition)
        elif self.connected:
            self._events.broker_state_changed(True, partition)
