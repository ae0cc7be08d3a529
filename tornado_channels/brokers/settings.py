"""Which broker a process uses, and how: each setting declared once (see core/settings.py).

The defaults written here are the only ones: the Redis broker and its parts
read this object (factory.py builds the broker from it), never a default of
their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.history import HISTORY_AGE, HISTORY_SIZE
from ..core.idempotency import IDEMPOTENCY_TTL
from ..core.settings import setting


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
        16,
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
    redis_prefix: str = setting(
        "tornado_channels:", "namespace of every Redis key and pub/sub channel used"
    )
    redis_timeout: float = setting(
        2.0,
        "seconds Redis may take to answer a publish (beyond: 504, outcome unknown, never "
        "retried) or a liveness probe (beyond: reconnect)",
        metavar="SECONDS",
    )
    redis_probe_interval: float = setting(
        2.0,
        "seconds of silence on the Redis subscription before a liveness probe is sent",
        metavar="SECONDS",
    )
    redis_check_interval: float = setting(
        30.0,
        "seconds between self-checks of the subscriptions Redis holds for this process "
        "(repaired when wrong, logged, counted; 0: never)",
        metavar="SECONDS",
    )
    presence_ttl: float = setting(
        10.0,
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

    @property
    def uses_redis(self) -> bool:
        """Whether these settings name a Redis (directly, or through Sentinels)."""
        return bool(self.redis_url or self.redis_sentinel)

    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """``redis_sentinel`` as ``(host, port)`` pairs (26379 when omitted); raise ValueError."""
        return [_address(text) for text in self.redis_sentinel]


@dataclass(frozen=True)
class Reconnection:
    """How the Redis broker's connections are made and come back after a loss.

    Not on the command line (a deployment has no reason to change them);
    tests shorten them to see a reconnection in a fraction of a second.
    """

    #: Seconds a TCP connection to Redis may take to open.
    connect_timeout: float = 2.0
    #: Seconds a link waits for Redis to confirm a SUBSCRIBE.
    subscribe_timeout: float = 5.0
    #: The first reconnection's delay, doubled per failed attempt up to the cap (jittered).
    backoff_base: float = 0.1
    backoff_cap: float = 1.0


def _address(text: str) -> tuple[str, int]:
    """``host:port`` (port 26379 when omitted) as a pair; raise ValueError."""
    host, _, port = text.rpartition(":")
    if not host:
        return text, 26379
    if not port.isdigit():
        raise ValueError(f"not a host:port: {text!r}")
    return host.strip("[]"), int(port)
