"""Sentinel and Redis Cluster as a user runs them: real processes on real deployments."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import pytest

from tornado_channels.core.partitions import partition_of_segment

from ..helpers import (
    RedisMode,
    ServerProcess,
    connect,
    hang_up,
    healthy,
    post,
    receive,
    run,
    silent,
    until,
)
from ..helpers.redis_modes import Cluster, Sentinel, _cli

Start = Callable[..., ServerProcess]

pytestmark = pytest.mark.processes

# First segments chosen to land in different partitions of 16 (checked below).
SPREAD = [f"s{number}" for number in range(40)]


@pytest.mark.parametrize("redis_mode", ["cluster"], indirect=True)
def test_cluster_keys_and_shard_channels_are_on_every_master(
    servers: Start, redis_mode: RedisMode
) -> None:
    """On a cluster, every master holds history keys and shard channels; no plain channel."""
    assert isinstance(redis_mode, Cluster)
    a = servers(*redis_mode.args())
    assert len({partition_of_segment(name, 16) for name in SPREAD}) == 16

    async def scenario() -> None:
        sockets = [await connect(a.ws_url + f"/{name}/x") for name in SPREAD]
        for name in SPREAD:
            assert (await post(a.url + f"/{name}/x", name)).code == 202
        for ws, name in zip(sockets, SPREAD, strict=True):
            assert await receive(ws) == name
        for master in redis_mode.masters():
            keys = _cli(master.port, "--scan", "--pattern", redis_mode.prefix + "*").split()
            assert any("h:c:" in key for key in keys), master.port
            shard = _cli(master.port, "PUBSUB", "SHARDCHANNELS", redis_mode.prefix + "*").split()
            assert any("c:" in key for key in shard), master.port
            assert _cli(master.port, "PUBSUB", "CHANNELS", "*").strip() == ""
        for ws in sockets:
            await hang_up(ws)

    run(scenario(), timeout=60)


def test_root_subtree_and_batch_reach_channels_of_every_partition_once(
    servers: Start, redis_mode: RedisMode
) -> None:
    """POST / and a batch across partitions reach each channel once, on every process."""
    a = servers(*redis_mode.args())
    b = servers(*redis_mode.args())
    names = SPREAD[:12]

    async def scenario() -> None:
        on_a = [await connect(a.ws_url + f"/{name}/1") for name in names]
        on_b = [await connect(b.ws_url + f"/{name}/1") for name in names]
        assert (await post(b.url + "/", "everyone")).code == 202
        for ws in on_a + on_b:
            assert await receive(ws) == "everyone"
        batch = {"messages": [{"channel": f"{name}/1", "data": name} for name in names]}
        answer = await post(a.url + "/_/publish", json.dumps(batch))
        assert answer.code == 202, answer.body
        assert json.loads(answer.body)["published"] == len(names)
        for ws, name in zip(on_a + on_b, names + names, strict=True):
            assert await receive(ws) == name
        assert (await post(a.url + f"/{names[0]}/", "below")).code == 202
        assert await receive(on_a[0]) == "below"
        assert await receive(on_b[0]) == "below"
        for ws in on_a + on_b:
            await silent(ws, 0.2)
            await hang_up(ws)

    run(scenario(), timeout=60)


def test_an_idempotency_key_publishes_once_across_processes(
    servers: Start, redis_mode: RedisMode
) -> None:
    """The same key sent concurrently to two processes, then again: one delivery, one position."""
    a = servers(*redis_mode.args())
    b = servers(*redis_mode.args())

    async def scenario() -> None:
        ws = await connect(a.ws_url + "/orders/1")
        headers = {"Idempotency-Key": "order-1-paid"}
        answers = await asyncio.gather(
            post(a.url + "/orders/1", "paid", headers=headers),
            post(b.url + "/orders/1", "paid", headers=headers),
        )
        again = await post(b.url + "/orders/1", "paid", headers=headers)
        assert [answer.code for answer in (*answers, again)] == [202, 202, 202]
        positions = {json.loads(answer.body)["position"] for answer in (*answers, again)}
        assert len(positions) == 1
        assert again.headers["Idempotent-Replayed"] == "true"
        assert await receive(ws) == "paid"
        await silent(ws)
        reused = await post(a.url + "/orders/2", "paid", headers=headers)
        assert reused.code == 422
        # A batch spanning partitions, retried: exactly what it published, once.
        batch = {"messages": [{"channel": f"{name}/1", "data": name} for name in SPREAD[:6]]}
        body = json.dumps(batch)
        batch_headers = {"Idempotency-Key": "batch-7"}
        first = await post(a.url + "/_/publish", body, headers=batch_headers)
        second = await post(b.url + "/_/publish", body, headers=batch_headers)
        assert first.code == second.code == 202
        assert json.loads(first.body) == json.loads(second.body)
        await hang_up(ws)

    run(scenario(), timeout=60)


def test_health_is_503_while_a_needed_master_is_unreachable(
    own_redis_mode: RedisMode, servers: Start
) -> None:
    """Health answers 503 once a master is gone, and 200 again once Redis serves again."""
    mode = own_redis_mode
    a = servers(*mode.args(), "--redis-probe-interval", "0.5", "--redis-timeout", "0.5")

    async def scenario() -> None:
        mode.kill_master(wait=False)
        await until(lambda: not healthy(a.url), timeout=20, what="health 503, the master dead")
        mode.wait_serving()
        await until(lambda: healthy(a.url), timeout=30, what="health 200 again")

    run(scenario(), timeout=90)


@pytest.mark.parametrize("own_redis_mode", ["sentinel"], indirect=True)
def test_waiting_for_a_replica_acknowledges_only_what_it_holds(
    own_redis_mode: RedisMode, servers: Start
) -> None:
    """With --redis-wait-replicas 1: 202 while the replica confirms, 504 once it cannot."""
    assert isinstance(own_redis_mode, Sentinel)
    mode = own_redis_mode
    a = servers(*mode.args(), "--redis-wait-replicas", "1", "--redis-timeout", "1")

    async def scenario() -> None:
        ws = await connect(a.ws_url + "/ledger")
        first = await post(a.url + "/ledger", "durable")
        assert first.code == 202, first.body
        assert await receive(ws) == "durable"
        held = _cli(mode.replica.port, "--scan", "--pattern", mode.prefix + "*h:c:ledger")
        assert held.strip(), "the replica has the stream once 202 was answered"
        mode.replica.kill()
        answer = await post(a.url + "/ledger", "unconfirmed", headers={"Idempotency-Key": "u1"})
        assert answer.code == 504, answer.body
        assert "replicas" in json.loads(answer.body)["message"]
        # Published nonetheless (the master has it): a subscriber sees it.
        assert await receive(ws) == "unconfirmed"
        await hang_up(ws)

    run(scenario(), timeout=60)
