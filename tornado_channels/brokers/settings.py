"""Which broker a process uses, and how: each setting declared once (see core/settings.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.history import HISTORY_AGE, HISTORY_SIZE
from ..core.idempotency import IDEMPOTENCY_TTL
from ..core.settings import setting
from .base import Broker
from .memory import MemoryBroker
from .redis import CHECK_INTERVAL, CLUSTER_PARTITIONS, PREFIX, PROBE_INTERVAL, TIMEOUT, RedisBroker
from .redis_presence import PRESENCE_TTL


@dataclass(frozen=True)
class BrokerSettings:
    """The broker's settings: Redis (when a URL is given) or the embedded one, and history."""

    redis_url: str | None = setting(
        None,
        "Redis to relay messages through, e.g. redis://:password@host:6379/0 (rediss:// for "
        "TLS); without it the process uses its embedded in-memory broker (single process)",
        shown="(none: embedded broker)",
        metavar="URL",
    )
    redis_sentinel: tuple[str, ...] = setting(
        (),
        "Redis Sentinels to ask where the master is, e.g. s1:26379,s2:26379,s3:26379; the "
        "process follows the master Sentinel promotes (credentials, db and TLS from --redis-url)",
        metavar="HOST:PORT,...",
    )
    redis_sentinel_master: str = setting(
        "mymaster", "the name of the master the Sentinels watch", metavar="NAME"
    )
    redis_cluster: bool = setting(
        False,
        "--redis-url is a node of a Redis Cluster: sharded pub/sub (SSUBSCRIBE/SPUBLISH) and "
        "history in partitions spread over the masters",
    )
    redis_partitions: int = setting(
        CLUSTER_PARTITIONS,
        "history partitions on a Redis Cluster (every process must use the same number; "
        "a channel's partition follows from its first segment)",
    )
    redis_wait_replicas: int = setting(
        0,
        "acknowledge a publish (202) only once this many replicas have it (Redis WAIT, within "
        "--redis-timeout; beyond it: 504); 0 acknowledges once the master has it",
    )
    idempotency_ttl: float = setting(
        IDEMPOTENCY_TTL,
        "seconds a publish's Idempotency-Key is remembered: a retry with the same key within "
        "it is answered with the first attempt's positions and publishes nothing",
        metavar="SECONDS",
    )
    redis_prefix: str = setting(PREFIX, "namespace of every Redis key and pub/sub channel used")
    redis_timeout: float = setting(
        TIMEOUT,
        "seconds Redis may take to answer a publish (beyond: 504, outcome unknown, never "
        "retried) or a liveness probe (beyond: reconnect)",
        metavar="SECONDS",
    )
    redis_probe_interval: float = setting(
        PROBE_INTERVAL,
        "seconds of silence on the Redis subscription before a liveness probe is sent",
        metavar="SECONDS",
    )
    redis_check_interval: float = setting(
        CHECK_INTERVAL,
        "seconds between self-checks of the subscriptions Redis holds for this process "
        "(repaired when wrong, logged, counted; 0: never)",
        metavar="SECONDS",
    )
    presence_ttl: float = setting(
        PRESENCE_TTL,
        "seconds a process's presence counts in Redis without being renewed (renewed every "
        "third of it): a process that dies stops counting within this long",
        metavar="SECONDS",
    )
    history_size: int = setting(
        HISTORY_SIZE,
        "messages kept per channel (and per subtree) for clients that resume from a position",
    )
    history_age: float = setting(
        HISTORY_AGE,
        "seconds a message stays recoverable; older ones count as missed",
        metavar="SECONDS",
    )


def make_broker(settings: BrokerSettings) -> Broker:
    """The broker ``settings`` ask for."""
    if settings.redis_url or settings.redis_sentinel:
        return RedisBroker(
            # With Sentinel, the URL only brings credentials, db and TLS.
            settings.redis_url or "redis://",
            prefix=settings.redis_prefix,
            sentinels=[_address(text) for text in settings.redis_sentinel],
            sentinel_master=settings.redis_sentinel_master,
            cluster=settings.redis_cluster,
            partitions=settings.redis_partitions,
            wait_replicas=settings.redis_wait_replicas,
            idempotency_ttl=settings.idempotency_ttl,
            command_timeout=settings.redis_timeout,
            probe_timeout=settings.redis_timeout,
            probe_interval=settings.redis_probe_interval,
            check_interval=settings.redis_check_interval,
            presence_ttl=settings.presence_ttl,
            history_size=settings.history_size,
            history_age=settings.history_age,
        )
    if settings.redis_cluster:
        raise ValueError("--redis-cluster needs --redis-url (any node of the cluster)")
    return MemoryBroker(
        history_size=settings.history_size,
        history_age=settings.history_age,
        idempotency_ttl=settings.idempotency_ttl,
    )


def _address(text: str) -> tuple[str, int]:
    """``host:port`` (port 26379 when omitted) as a pair; raise ValueError."""
    host, _, port = text.rpartition(":")
    if not host:
        return text, 26379
    if not port.isdigit():
        raise ValueError(f"not a host:port: {text!r}")
    return host.strip("[]"), int(port)
