"""Where each partition's master is (brokers/topology.py): options, logs, and a real cluster."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tornado_channels.brokers.keys import KeyLayout
from tornado_channels.brokers.topology import (
    Cluster,
    Standalone,
    connection_options,
    redact_url,
)

from ..helpers import RedisMode, RedisServer, run


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:sesame@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://alice:sesame@host:6380", "rediss://alice:***@host:6380"),
    ],
)
def test_a_url_is_logged_without_its_password(url: str, shown: str) -> None:
    """redact_url keeps everything but the password."""
    assert redact_url(url) == shown


def test_connection_options_never_retry_and_carry_the_timeouts() -> None:
    """No blind retry (a resent PUBLISH delivers twice), both timeouts, TLS from rediss://."""
    options = connection_options("rediss://:pw@h:7000/2", connect_timeout=1.5, command_timeout=2.5)
    assert options["retry"].get_retries() == 0
    assert (options["socket_connect_timeout"], options["socket_timeout"]) == (1.5, 2.5)
    assert options["ssl"] is True
    assert options["password"] == "pw"
    assert not {"host", "port", "db", "path"} & set(options)


def test_standalone_has_one_client_for_every_partition(redis_server: RedisServer) -> None:
    """Every partition is the one server's; it answers, and is described without a password."""

    async def scenario() -> None:
        topology = Standalone(redis_server.url, 2.0, 2.0)
        assert topology.client(0) is topology.client(7)
        assert await topology.client(3).ping()
        assert topology.masters() == [topology.client(0)]
        await topology.close()

    run(scenario())
    assert "***" in Standalone("redis://:secret@h:1/0", 1.0, 1.0).describe(0)


@pytest.mark.parametrize("redis_mode", ["cluster"], indirect=True)
def test_a_cluster_partition_is_served_by_the_master_of_its_slot(redis_mode: RedisMode) -> None:
    """After a refresh each partition's client writes its slot's keys without a MOVED."""
    layout = KeyLayout(b"topology-test:", 16)
    url = redis_mode.args()[redis_mode.args().index("--redis-url") + 1]

    async def scenario() -> None:
        topology = Cluster(url, layout, 2.0, 2.0)
        await topology.refresh()
        for partition in range(layout.partitions):
            client: Redis = topology.client(partition)
            # A master that does not own the slot answers MOVED (a ResponseError).
            assert await client.set(layout.meta(partition) + b":probe", b"1", px=5000)
            assert f"cluster partition {partition} at " in topology.describe(partition)
        spread = topology.spread()
        assert sum(spread.values()) == layout.partitions
        assert len(spread) == len(topology.masters()) >= 2
        await topology.close()

    run(scenario())
