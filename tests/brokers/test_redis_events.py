"""The events log in Redis: one lease holder per partition, exact removal, the cap counted."""

from __future__ import annotations

import asyncio

import pytest

from tornado_channels import RedisBroker
from tornado_channels.brokers.events import encode
from tornado_channels.brokers.redis_events import RedisEventLog

from ..helpers import RedisServer, run

pytestmark = pytest.mark.processes


def logs(broker: RedisBroker, count: int, max_backlog: int = 100) -> list[RedisEventLog]:
    """``count`` processes' logs on ``broker``'s Redis, with short leases."""
    run_on = broker._reading
    return [
        RedisEventLog(broker.layout, f"p{n}", run_on, max_backlog=max_backlog, lease=0.3)
        for n in range(count)
    ]


def body(n: int) -> bytes:
    return encode("subscribe", f"room/{n}", None, "test")


def test_one_holder_at_a_time_and_a_silent_one_is_taken_over() -> None:
    """B cannot take A's lease while A renews it; once A stops, B gets it and A cannot ack."""
    redis = RedisServer().start()

    async def scenario() -> None:
        broker = RedisBroker(redis.url)
        a, b = logs(broker, 2)
        for n in range(3):
            a.append(0, body(n))
        await a.flush()
        assert await a.hold(0)
        assert not await b.hold(0)
        first = await a.read(0, 10)
        assert [e.as_json()["channel"] for e in first] == ["room/0", "room/1", "room/2"]
        # A goes silent (a stalled or dead process): its lease expires, B takes over.
        for _ in range(100):
            if await b.hold(0):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("B never got the lease")
        assert not await a.ack(0, first[-1]), "a lost lease acknowledges nothing"
        assert [e.id for e in await b.read(0, 10)] == [e.id for e in first]
        assert await b.ack(0, first[1])
        assert [e.id for e in await b.read(0, 10)] == [first[2].id], "removed up to it, exactly"
        await b.stop()
        assert await a.hold(0), "a released lease is free at once"
        await broker.topology.close()

    try:
        run(scenario(), timeout=30)
    finally:
        redis.stop()


def test_past_the_cap_the_oldest_go_and_the_holder_counts_them() -> None:
    """Ten events under a cap of four: the newest four stay; the holder counts six dropped."""
    redis = RedisServer().start()

    async def scenario() -> None:
        broker = RedisBroker(redis.url)
        (log,) = logs(broker, 1, max_backlog=4)
        for n in range(10):
            log.append(0, body(n))
            await log.flush()  # Each stored on its own: Redis's cap, not the buffer's.
        assert log.dropped == 0
        assert await log.hold(0)
        assert log.dropped == 6
        kept = await log.read(0, 10)
        assert [e.as_json()["channel"] for e in kept] == [f"room/{n}" for n in range(6, 10)]
        assert await log.hold(0)
        assert log.dropped == 6, "counted once"
        await broker.topology.close()

    try:
        run(scenario(), timeout=30)
    finally:
        redis.stop()
