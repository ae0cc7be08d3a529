"""brokers/topology.py: where each partition's master is, the retry after MOVED, a real cluster."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from tornado_channels.brokers.keys import KeyLayout
from tornado_channels.brokers.settings import BrokerSettings, Reconnection
from tornado_channels.brokers.topology import (
    Cluster,
    SentinelMaster,
    Standalone,
    connection_options,
    redact_url,
    topology_for,
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


class Moving(Standalone):
    """One server whose commands fail as a cluster's do while a slot moves; refreshes counted."""

    def __init__(self) -> None:
        super().__init__("redis://127.0.0.1:1/0", connect_timeout=0.1, command_timeout=0.1)
        self.refreshes = 0

    async def refresh(self) -> None:
        self.refreshes += 1


def answers(*outcomes: Exception | str) -> tuple[list[int], Callable[[Redis], Awaitable[str]]]:
    """A command that fails or answers, in turn, with ``outcomes``; and its call count."""
    calls: list[int] = []

    async def command(client: Redis) -> str:
        calls.append(1)
        outcome = outcomes[len(calls) - 1]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return calls, command


@pytest.mark.parametrize("error", ["MOVED 1234 10.0.0.2:7001", "CLUSTERDOWN", "TRYAGAIN"])
def test_a_command_sent_to_a_master_that_moved_is_sent_once_more_after_a_refresh(
    error: str,
) -> None:
    """MOVED, CLUSTERDOWN or TRYAGAIN means it did not run: refresh, then run it once more."""
    topology = Moving()
    calls, command = answers(ResponseError(error), "done")
    assert run(topology.routed(0, command)) == "done"
    assert (len(calls), topology.refreshes) == (2, 1)


def test_a_second_move_in_a_row_is_raised_not_retried_again() -> None:
    """Only one retry: a master that moves again is the caller's error to answer."""
    topology = Moving()
    calls, command = answers(ResponseError("MOVED 1 a:1"), ResponseError("MOVED 2 b:2"), "never")
    with pytest.raises(ResponseError, match="MOVED 2"):
        run(topology.routed(0, command))
    assert len(calls) == 2


def test_any_other_error_is_raised_at_once() -> None:
    """A script's own error (it may have run) is never retried."""
    topology = Moving()
    calls, command = answers(ResponseError("ERR script failed"), "never")
    with pytest.raises(ResponseError, match="script failed"):
        run(topology.routed(0, command))
    assert (len(calls), topology.refreshes) == (1, 0)


@pytest.mark.parametrize(
    ("settings", "kind"),
    [
        ({"redis_url": "redis://h:1/0"}, Standalone),
        ({"redis_url": "redis://:pw@h/0", "redis_sentinel": ("s1:26379", "s2")}, SentinelMaster),
        ({"redis_url": "redis://h:7000", "redis_cluster": True}, Cluster),
    ],
)
def test_the_settings_choose_the_topology(settings: dict[str, Any], kind: type) -> None:
    """A URL alone is one server; Sentinels are asked for the master; a cluster is a cluster."""
    topology = topology_for(BrokerSettings(**settings), KeyLayout(b"t:", 16), Reconnection())
    assert type(topology) is kind


def test_a_cluster_is_not_reached_through_sentinel() -> None:
    """Both at once is refused with a ValueError naming the conflict."""
    settings = BrokerSettings(redis_url="redis://h", redis_cluster=True, redis_sentinel=("s",))
    with pytest.raises(ValueError, match="Sentinel"):
        topology_for(settings, KeyLayout(b"t:", 16), Reconnection())
