"""brokers/factory.py: the broker the settings ask for, and settings that contradict each other."""

from __future__ import annotations

import pytest

from tornado_channels import BrokerSettings, MemoryBroker, RedisBroker
from tornado_channels.brokers.factory import make_broker
from tornado_channels.client import RedisPublisher


def test_without_a_redis_url_the_broker_is_the_embedded_one_with_the_history_asked() -> None:
    """No URL: a MemoryBroker, keeping the history size and age the settings name."""
    broker = make_broker(BrokerSettings(history_size=7, history_age=9.0))
    assert isinstance(broker, MemoryBroker)
    assert (broker.history.max_size, broker.history.max_age) == (7, 9.0)


@pytest.mark.parametrize(
    ("settings", "mode"),
    [
        ({"redis_url": "redis://127.0.0.1:1/0"}, "standalone"),
        ({"redis_sentinel": ("127.0.0.1:1",)}, "sentinel"),
        ({"redis_url": "redis://127.0.0.1:1", "redis_cluster": True}, "cluster"),
    ],
)
def test_a_redis_url_or_sentinels_make_a_redis_broker_in_that_mode(
    settings: dict[str, object], mode: str
) -> None:
    """Made without connecting: a URL is one server, Sentinels a master, a cluster a cluster."""
    broker = make_broker(BrokerSettings(**settings))
    assert isinstance(broker, RedisBroker)
    assert broker.mode == mode
    assert broker.partitions == (16 if mode == "cluster" else 1)


def test_a_cluster_without_a_url_is_refused_naming_the_flag() -> None:
    """--redis-cluster alone has no node to ask: a ValueError naming --redis-url."""
    with pytest.raises(ValueError, match="--redis-url"):
        make_broker(BrokerSettings(redis_cluster=True))


def test_a_redis_publisher_without_redis_is_refused() -> None:
    """RedisPublisher() with neither a URL nor Sentinels: a ValueError, before any connection."""
    with pytest.raises(ValueError, match="redis_url"):
        RedisPublisher()
