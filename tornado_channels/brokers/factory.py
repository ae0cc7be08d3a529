"""The broker a process's settings ask for: Redis when they name one, else the embedded one."""

from __future__ import annotations

from .base import Broker
from .memory import MemoryBroker
from .redis import RedisBroker
from .settings import BrokerSettings


def make_broker(settings: BrokerSettings) -> Broker:
    """The broker ``settings`` ask for; raise ValueError for settings that contradict each other."""
    if settings.uses_redis:
        return RedisBroker(settings)
    if settings.redis_cluster:
        raise ValueError("--redis-cluster needs --redis-url (any node of the cluster)")
    return MemoryBroker(
        history_size=settings.history_size,
        history_age=settings.history_age,
        idempotency_ttl=settings.idempotency_ttl,
    )
