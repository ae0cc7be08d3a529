"""Redis brokers for tests: the settings a test names, reconnection shortened."""

from __future__ import annotations

from typing import Any

from tornado_channels.brokers.redis import RedisBroker
from tornado_channels.brokers.settings import BrokerSettings, Reconnection

#: Reconnection in tenths of a second: a test sees a lost link come back quickly.
FAST = Reconnection(connect_timeout=0.5, subscribe_timeout=5.0, backoff_base=0.05, backoff_cap=0.3)


def redis_broker(url: str, reconnection: Reconnection = FAST, **settings: Any) -> RedisBroker:
    """A broker on ``url`` with ``settings`` (BrokerSettings' field names) and fast reconnection."""
    return RedisBroker(BrokerSettings(redis_url=url, **settings), reconnection=reconnection)
