"""Subtree subscriptions across processes, on every Redis mode: once each, resumable."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from ..helpers import (
    RedisMode,
    ServerProcess,
    connect,
    hang_up,
    next_json,
    post,
    receive,
    run,
    silent,
)

Start = Callable[..., ServerProcess]

pytestmark = pytest.mark.processes

#: Every kind of target that reaches users/, and some that must not.
BELOW = ["/users/1", "/users/2/inbox", "/users/", "/users/2/", "/"]
BESIDE = ["/users", "/userspace/1", "/other/", "/other/1"]


async def publish(server: ServerProcess, path: str, body: str) -> str:
    response = await post(server.url + path, body)
    assert response.code == 202, response.body
    return json.loads(response.body)["position"]  # type: ignore[no-any-return]


def test_a_subtree_subscriber_on_one_process_hears_publishes_through_another(
    servers: Start, redis_mode: RedisMode
) -> None:
    """users/ on A hears every target below it published through B, once; nothing beside it."""
    a = servers(*redis_mode.args())
    b = servers(*redis_mode.args())

    async def scenario() -> None:
        below = await connect(a.ws_url + "/users/")
        everything = await connect(a.ws_url + "/")
        channel = await connect(b.ws_url + "/users/2/inbox")
        for number, path in enumerate(BELOW):
            await publish(b, path, f"m{number}")
        for path in BESIDE:
            await publish(b, path, "beside")
        assert [await receive(below) for _ in BELOW] == [f"m{n}" for n in range(5)]
        assert [await receive(channel) for _ in range(4)] == ["m1", "m2", "m3", "m4"]
        got = [await receive(everything) for _ in range(len(BELOW) + len(BESIDE))]
        assert sorted(got) == sorted([f"m{n}" for n in range(5)] + ["beside"] * 4)
        for ws in (below, everything, channel):
            await silent(ws)
            await hang_up(ws)

    run(scenario(), timeout=60)


def test_a_subtree_subscriber_resumes_200_messages_below_it(
    servers: Start, redis_mode: RedisMode
) -> None:
    """Away while 200 messages reach below users/ (and others not), it gets them back in order."""
    a = servers(*redis_mode.args(), "--history-size", "300")
    b = servers(*redis_mode.args(), "--history-size", "300")

    async def scenario() -> None:
        ws = await connect(a.ws_url + "/users/?positions=1")
        since = (await next_json(ws))["position"]
        await hang_up(ws)
        expected = []
        paths = ["/users/1", "/users/2/x", "/users/", "/other/1", "/users/3/y/", "/"]
        number = 0
        while len(expected) < 200:
            path = paths[number % len(paths)]
            position = await publish(b, path, f"m{number}")
            if not path.startswith("/other"):
                expected.append((position, f"m{number}"))
            number += 1
        resumed = await connect(a.ws_url + f"/users/?since={since}")
        got = [await next_json(resumed) for _ in expected]
        assert [m["data"] for m in got] == [data for _, data in expected]
        # Each names where it was published; its position is its own partition's.
        assert {m["channel"] for m in got} == {"users/1", "users/2/x", "users/", "users/3/y/", "/"}
        outcome = await next_json(resumed)
        assert outcome["recovered"] is True, outcome
        assert outcome["missed"] == 200
        live = await publish(b, "/users/9", "live")
        assert await next_json(resumed) == {"position": live, "channel": "users/9", "data": "live"}
        await hang_up(resumed)

    run(scenario(), timeout=120)
