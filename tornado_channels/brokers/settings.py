"""Which broker a process uses, and how: each setting declared once (see core/settings.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.history import HISTORY_AGE, HISTORY_SIZE
from ..core.settings import setting
from .base import Broker
from .memory import MemoryBroker
from .redis import CHECK_INTERVAL, PREFIX, PROBE_INTERVAL, TIMEOUT, RedisBroker


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
    if settings.redis_url:
        return RedisBroker(
            settings.redis_url,
            prefix=settings.redis_prefix,
            command_timeout=settings.redis_timeout,
            probe_timeout=settings.redis_timeout,
            probe_interval=settings.redis_probe_interval,
            check_interval=settings.redis_check_interval,
            history_size=settings.history_size,
            history_age=settings.history_age,
        )
    return MemoryBroker(history_size=settings.history_size, history_age=settings.history_age)
