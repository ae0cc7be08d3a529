"""Which Redis master serves each partition: a standalone server, Sentinel's master, or a cluster.

The broker asks a topology for the client of a partition's master and, when
Redis says it went to the wrong one (a failover, ``MOVED``), to look again.
Clients never retry a command by themselves: a retried publish could be
delivered twice, so every retry is the broker's decision.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from .keys import KeyLayout
from .settings import BrokerSettings, Reconnection

log = logging.getLogger("tornado_channels.redis")

#: Seconds between two cluster topology refreshes, at least.
_REFRESH_GAP = 0.25
#: The errors that say a command went to a master that no longer serves its slot: it did not run.
_ELSEWHERE = ("MOVED", "CLUSTERDOWN", "TRYAGAIN")

T = TypeVar("T")


class TopologyUnknown(RedisError):
    """No master is known for a partition yet (the cluster could not be read)."""


def connection_options(url: str, connect_timeout: float, command_timeout: float) -> dict[str, Any]:
    """Keyword arguments for one Redis connection from ``url`` (without host, port or db)."""
    options: dict[str, Any] = dict(parse_url(url))
    for name in ("host", "port", "db", "path"):
        options.pop(name, None)
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    options.update(
        # Never retry a command blindly: a retried PUBLISH can deliver twice.
        retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=connect_timeout,
        socket_timeout=command_timeout,
    )
    return options


class Topology(abc.ABC):
    """The masters of a deployment, by partition."""

    #: Whether pub/sub is sharded (SSUBSCRIBE/SPUBLISH): a cluster's.
    sharded = False
    #: Short name of the mode, for health checks and logs.
    mode = "standalone"

    @abc.abstractmethod
    def client(self, partition: int) -> Redis:
        """The client of ``partition``'s master as currently known; raise TopologyUnknown."""

    async def open(self, partition: int) -> Redis:
        """The client a (re)connecting pub/sub link of ``partition`` should use now."""
        return self.client(partition)

    async def refresh(self) -> None:  # noqa: B027 - most topologies have nothing to refresh.
        """Look again: Redis said a partition's master is elsewhere."""

    @abc.abstractmethod
    def describe(self, partition: int) -> str:
        """Where ``partition``'s master is, for logs (no password)."""

    @abc.abstractmethod
    def masters(self) -> list[Redis]:
        """A client per master currently known (for the cluster's health and tests)."""

    async def close(self) -> None:
        """Release every connection."""
        for client in self.masters():
            await client.aclose()

    async def routed(self, partition: int, run: Callable[[Redis], Awaitable[T]]) -> T:
        """Run on the master of ``partition``; once more after a ``MOVED`` (it did not run)."""
        for attempt in (0, 1):
            try:
                return await run(self.client(partition))
            except ResponseError as exc:
                if attempt or not str(exc).startswith(_ELSEWHERE):
                    raise
                await self.refresh()
        raise AssertionError("unreachable")  # pragma: no cover


def topology_for(
    settings: BrokerSettings, layout: KeyLayout, reconnection: Reconnection
) -> Topology:
    """The topology ``settings`` describe: a cluster, Sentinel's master, or one server.

    With Sentinel, the URL only brings credentials, db and TLS.
    """
    url = settings.redis_url or "redis://"
    connect, command = reconnection.connect_timeout, settings.redis_timeout
    if settings.redis_cluster:
        if settings.redis_sentinel:
            raise ValueError("a Redis Cluster is not reached through Sentinel")
        return Cluster(url, layout, connect, command)
    if settings.redis_sentinel:
        sentinels = settings.sentinel_addresses()
        return SentinelMaster(url, sentinels, settings.redis_sentinel_master, connect, command)
    return Standalone(url, connect, command)


class Standalone(Topology):
    """One Redis server holds everything."""

    def __init__(self, url: str, connect_timeout: float, command_timeout: float) -> None:
        self._url = url
        self._client = Redis.from_url(
            url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=connect_timeout,
            socket_timeout=command_timeout,
        )

    def client(self, partition: int) -> Redis:
        """The one client."""
        return self._client

    def describe(self, partition: int) -> str:
        """The URL, without its password."""
        return redact_url(self._url)

    def masters(self) -> list[Redis]:
        """The one client."""
        return [self._client]


class SentinelMaster(Topology):
    """The master Sentinel names: every new connection asks the sentinels where it is."""

    mode = "sentinel"

    def __init__(
        self,
        url: str,
        sentinels: list[tuple[str, int]],
        service: str,
        connect_timeout: float,
        command_timeout: float,
    ) -> None:
        self._service = service
        self._hosts = sentinels
        options = connection_options(url, connect_timeout, command_timeout)
        db = parse_url(url).get("db", 0)
        # The sentinels themselves are asked with the same timeouts, no password.
        self._sentinel = Sentinel(
            sentinels,
            sentinel_kwargs={
                "socket_connect_timeout": connect_timeout,
                "socket_timeout": command_timeout,
            },
        )
        self._client: Redis = self._sentinel.master_for(service, db=db, **options)

    def client(self, partition: int) -> Redis:
        """The master's client (its pool follows the master)."""
        return self._client

    async def open(self, partition: int) -> Redis:
        """The master's client, once the sentinels have said where the master is now."""
        # Idle connections to a demoted master are dropped by the pool when
        # the address changes: ask before each reconnection.
        pool = self._client.connection_pool
        assert isinstance(pool, SentinelConnectionPool)  # master_for's own pool.
        await pool.get_master_address()
        return self._client

    def describe(self, partition: int) -> str:
        """The service name and the sentinels asked."""
        hosts = ",".join(f"{host}:{port}" for host, port in self._hosts)
        return f"sentinel {self._service} via {hosts}"

    def masters(self) -> list[Redis]:
        """The master's client."""
        return [self._client]

    async def close(self) -> None:
        """Close the master's connections and the sentinels'."""
        await self._client.aclose()
        for sentinel in self._sentinel.sentinels:
            await sentinel.aclose()


class Cluster(Topology):
    """A Redis Cluster: each partition's slot is served by one master, found from CLUSTER SLOTS."""

    sharded = True
    mode = "cluster"

    def __init__(
        self, url: str, layout: KeyLayout, connect_timeout: float, command_timeout: float
    ) -> None:
        parsed = parse_url(url)
        self._url = url
        self._options = connection_options(url, connect_timeout, command_timeout)
        self._layout = layout
        # Every node ever seen: any of them can tell the topology again.
        self._seeds: list[tuple[str, int]] = [
            (str(parsed.get("host", "127.0.0.1")), int(parsed.get("port", 6379)))
        ]
        self._clients: dict[tuple[str, int], Redis] = {}
        self._owners: list[tuple[str, int] | None] = [None] * layout.partitions
        self._lock = asyncio.Lock()
        self._refreshed_at = 0.0

    def _node(self, address: tuple[str, int]) -> Redis:
        client = self._clients.get(address)
        if client is None:
            client = self._clients[address] = Redis(
                host=address[0], port=address[1], **self._options
            )
        return client

    def client(self, partition: int) -> Redis:
        """The client of the master that served ``partition``'s slot when last looked at."""
        owner = self._owners[partition]
        if owner is None:
            raise TopologyUnknown(f"no master is known for partition {partition} yet")
        return self._node(owner)

    async def open(self, partition: int) -> Redis:
        """Look at the topology again, then the client of the partition's master."""
        await self.refresh()
        return self.client(partition)

    async def refresh(self) -> None:
        """Read CLUSTER SLOTS from the first node that answers (at most every 0.25 s)."""
        loop = asyncio.get_running_loop()
        async with self._lock:
            if loop.time() - self._refreshed_at < _REFRESH_GAP:
                return
            seeds = [*self._seeds]
            random.shuffle(seeds)
            failure: Exception | None = None
            for address in seeds:
                try:
                    node = self._node(address)
                    slots = await node.execute_command("CLUSTER SLOTS")
                except (RedisError, OSError) as exc:
                    failure = exc
                    continue
                self._apply(slots)
                self._refreshed_at = loop.time()
                return
            raise TopologyUnknown(f"no cluster node answered CLUSTER SLOTS: {failure}")

    def _apply(self, slots: Any) -> None:
        owners: list[tuple[str, int] | None] = [None] * self._layout.partitions
        wanted = {self._layout.slot(p): p for p in range(self._layout.partitions)}
        for start, end, master, *replicas in slots:
            address = (_text(master[0]) or self._seeds[0][0], int(master[1]))
            for node in (master, *replicas):
                seed = (_text(node[0]) or self._seeds[0][0], int(node[1]))
                if seed not in self._seeds:
                    self._seeds.append(seed)
            for slot, partition in wanted.items():
                if int(start) <= slot <= int(end):
                    owners[partition] = address
        moved = [p for p in range(len(owners)) if owners[p] != self._owners[p]]
        if moved and any(self._owners):
            log.info("Redis Cluster topology changed: %d partitions moved", len(moved))
        self._owners = owners

    def describe(self, partition: int) -> str:
        """The partition's master as last known."""
        owner = self._owners[partition]
        where = f"{owner[0]}:{owner[1]}" if owner else "unknown master"
        return f"cluster partition {partition} at {where}"

    def masters(self) -> list[Redis]:
        """A client per master that serves at least one partition."""
        return [self._node(owner) for owner in dict.fromkeys(self._owners) if owner is not None]

    def spread(self) -> dict[str, int]:
        """Partitions per master, by address."""
        counts: dict[str, int] = {}
        for owner in self._owners:
            if owner is not None:
                name = f"{owner[0]}:{owner[1]}"
                counts[name] = counts.get(name, 0) + 1
        return counts

    async def close(self) -> None:
        """Close every node's connections."""
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def redact_url(url: str) -> str:
    """``url`` with any password replaced, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:" if parts.username else ":"
    return urlunsplit(parts._replace(netloc=f"{user}***@{netloc}"))
