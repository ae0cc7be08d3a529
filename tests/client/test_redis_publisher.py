"""RedisPublisher in every Redis mode: the servers' positions, history and keys, no HTTP hop."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tornado_channels.client import (
    BrokerUnavailable,
    ChannelError,
    IdempotencyKeyReused,
    RedisPublisher,
    Retry,
    SyncRedisPublisher,
)

from ..helpers import (
    WAIT,
    RedisMode,
    RedisServer,
    ServerProcess,
    connect,
    hang_up,
    next_json,
    post,
    run,
    silent,
)

pytestmark = pytest.mark.processes

Start = Callable[..., ServerProcess]


def publisher_for(mode: RedisMode, **options: Any) -> RedisPublisher:
    """A RedisPublisher with the settings the mode's servers get from their flags."""
    args = mode.args()
    flags = dict(zip(args[::2], args[1::2], strict=False))
    settings: dict[str, Any] = {"redis_prefix": mode.prefix}
    if "--redis-sentinel" in flags:
        settings["redis_sentinel"] = tuple(flags["--redis-sentinel"].split(","))
        settings["redis_sentinel_master"] = flags["--redis-sentinel-master"]
    if "--redis-cluster" in args:
        settings["redis_cluster"] = True
    url = next(value for flag, value in flags.items() if flag == "--redis-url")
    return RedisPublisher(url, **settings, **options)


def test_subscribers_of_a_server_get_its_messages_and_resume_across_them(
    servers: Start, redis_mode: RedisMode
) -> None:
    """Messages published into Redis reach a server's subscriber, who resumes across them."""
    server = servers(*redis_mode.args())

    async def scenario() -> None:
        async with publisher_for(redis_mode) as publisher:
            ws = await connect(server.ws_url + "/users/1?positions=1")
            await next_json(ws)
            first = await publisher.publish("users/1", "one")
            assert await next_json(ws) == {"position": first, "data": "one"}
            below = await publisher.publish("users/", b"\xff")
            assert (await next_json(ws))["position"] == below
            await hang_up(ws)
            # While away: from Redis directly, and by a POST, interleaved.
            away = await publisher.publish_many([("users/1", "two"), ("users/2", "other")])
            posted = await post(server.url + "/users/1", "three")
            assert posted.code == 202
            await publisher.publish("users/1", {"four": 4})
            resumed = await connect(server.ws_url + f"/users/1?since={below}")
            got = [await next_json(resumed) for _ in range(3)]
            assert [m["data"] for m in got] == ["two", "three", '{"four":4}']
            assert got[0]["position"] == away[0]
            outcome = await next_json(resumed)
            assert outcome["recovered"] is True
            assert outcome["missed"] == 3
            await silent(resumed)
            resumed.close()

    run(scenario())


def test_an_idempotency_key_is_shared_with_the_servers(
    servers: Start, redis_mode: RedisMode
) -> None:
    """A key RedisPublisher used replays for a POST with that key, and refuses another message."""
    server = servers(*redis_mode.args())

    async def scenario() -> None:
        async with publisher_for(redis_mode) as publisher:
            position = await publisher.publish("orders/7", "paid", idempotency_key="order-7")
            again = await post(
                server.url + "/orders/7", "paid", headers={"Idempotency-Key": "order-7"}
            )
            assert again.headers["Idempotent-Replayed"] == "true"
            assert again.body.decode().count(position) == 1
            assert (
                await publisher.publish("orders/7", "paid", idempotency_key="order-7") == position
            )
            with pytest.raises(IdempotencyKeyReused):
                await publisher.publish("orders/7", "refunded", idempotency_key="order-7")
            with pytest.raises(ChannelError):
                await publisher.publish("orders/../x", "no")

    run(scenario())


def test_a_redis_outage_raises_broker_unavailable_then_publishing_resumes() -> None:
    """With Redis down, a publish retries, then raises; once Redis is back, it publishes again."""
    redis = RedisServer().start()

    async def scenario() -> None:
        retry = Retry(attempts=3, backoff=0.05, cap=0.1)
        async with RedisPublisher(redis.url, retry=retry, redis_timeout=0.5) as publisher:
            assert await publisher.publish("users/1", "before")
            redis.kill()
            with pytest.raises(BrokerUnavailable):
                await publisher.publish("users/1", "lost")
            redis.start()
            assert await publisher.publish("users/1", "after")

    try:
        run(scenario())
    finally:
        redis.stop()


def test_the_sync_redis_publisher_publishes_from_plain_threads(servers: Start) -> None:
    """SyncRedisPublisher blocks, needs no loop in its callers, and shares the servers' sequence."""
    redis = RedisServer().start()
    try:
        server = servers("--redis-url", redis.url)
        with SyncRedisPublisher(redis.url) as publisher:
            results: list[str] = []

            def work() -> None:
                with pytest.raises(RuntimeError):
                    asyncio.get_running_loop()
                results.extend(publisher.publish("t/1", f"m{n}") for n in range(25))

            threads = [threading.Thread(target=work) for _ in range(4)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(WAIT)
            assert len(set(results)) == 100
            assert (
                publisher.publish_many([("t/1", "a"), ("t/2", "b")])[0].split(":")[0]
                == (results[0].split(":")[0])
            )
        posted = run(post(server.url + "/t/1", "via http"))
        seq = int(json.loads(posted.body)["position"].split(":")[1])
        assert seq == 103  # 100 + 2 from Redis directly, then this one
    finally:
        redis.stop()
