"""Recovery across processes through one Redis: nothing lost, nothing twice."""

from __future__ import annotations

import json
from collections.abc import Callable

from tornado_channels.core.publication import Position

from ..helpers import (
    EventStream,
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

Start = Callable[..., ServerProcess]


async def publish(server: ServerProcess, path: str, body: str) -> str:
    response = await post(server.url + path, body)
    assert response.code == 202, response.body
    return json.loads(response.body)["position"]  # type: ignore[no-any-return]


def test_reconnecting_client_recovers_200_messages_from_the_other_process(
    servers: Start, redis_mode: RedisMode
) -> None:
    """200 messages published elsewhere while away come back in order, once, then live ones."""
    a = servers(*redis_mode.args(), "--history-size", "500")
    b = servers(*redis_mode.args(), "--history-size", "500")

    async def scenario() -> None:
        ws = await connect(a.ws_url + "/users/1?positions=1")
        assert (await next_json(ws))["missed"] == 0  # where it starts
        last = await publish(b, "/users/1", "before")
        assert (await next_json(ws))["position"] == last
        await hang_up(ws)
        expected = []
        paths = ["/users/1", "/users/", "/", "/users/2", "/users/1/x"]
        number = 0
        while len(expected) < 200:
            path = paths[number % len(paths)]
            position = await publish(b, path, f"m{number}")
            if path in ("/users/1", "/users/", "/"):  # what reaches users/1
                # A root publish on a cluster has a copy in every partition;
                # the answer names partition 0's, maybe not users/1's.
                expected.append((position if path != "/" else "", f"m{number}"))
            number += 1
        resumed = await connect(a.ws_url + f"/users/1?since={last}")
        got = [await next_json(resumed) for _ in expected]
        assert [m["data"] for m in got] == [data for _, data in expected]
        for message, (position, _) in zip(got, expected, strict=True):
            assert message["position"] == position or not position
        positions = [Position.parse(m["position"]) for m in got]
        assert positions == sorted(positions)
        assert len(set(positions)) == 200
        assert await next_json(resumed) == {
            "recovered": True,
            "missed": 200,
            "position": got[-1]["position"],
        }
        live = await publish(b, "/users/", "live")
        assert await next_json(resumed) == {"position": live, "data": "live"}
        await silent(resumed)
        await hang_up(resumed)

    run(scenario(), timeout=120)


def test_beyond_the_window_and_after_a_redis_restart_recovery_fails_explicitly(
    servers: Start, redis_server: RedisServer
) -> None:
    """Past the kept history, or after Redis lost its data, the client is told so."""
    a = servers("--redis-url", redis_server.url, "--history-size", "10")

    async def scenario() -> None:
        first = await publish(a, "/feed", "0")
        for number in range(20):
            await publish(a, "/feed", str(number))
        beyond = await connect(a.ws_url + f"/feed?since={first}")
        outcome = await next_json(beyond)
        assert outcome["recovered"] is False
        assert "history" in outcome["reason"]
        beyond.close()
        last = await publish(a, "/feed", "last before restart")
        redis_server.kill()
        redis_server.start()  # no persistence: history and epoch are gone
        a.wait_healthy()
        await publish(a, "/feed", "first after restart")
        lost = await connect(a.ws_url + f"/feed?since={last}")
        outcome = await next_json(lost)
        assert outcome["recovered"] is False
        assert "epoch" in outcome["reason"]
        await hang_up(lost)

    run(scenario(), timeout=120)


def test_event_stream_resumes_from_last_event_id_across_processes(
    servers: Start, redis_mode: RedisMode
) -> None:
    """An event stream resumed with Last-Event-ID on one process gets what the other published."""
    a = servers(*redis_mode.args())
    b = servers(*redis_mode.args())

    async def scenario() -> None:
        seen = await publish(b, "/news/1", "seen")
        missed = [
            await publish(b, path, f"m{n}")
            for n, path in enumerate(["/news/1", "/news/", "/news/1"] * 10)
        ]
        stream = await EventStream.open(a.port, "/news/1", {"Last-Event-ID": seen})
        try:
            got = [await stream.next() for _ in missed]
            assert [event["id"] for event in got if event] == missed
            assert [event["data"] for event in got if event] == [f"m{n}" for n in range(30)]
            outcome = await stream.next()
            assert outcome is not None
            assert json.loads(outcome["data"]) == {
                "recovered": True,
                "missed": 30,
                "position": missed[-1],
            }
            live = await publish(b, "/news/1", "live")
            assert await stream.next() == {"id": live, "data": "live"}
        finally:
            stream.close()
            await stream.writer.wait_closed()

    run(scenario(), timeout=60)


def test_a_writer_with_a_smaller_history_is_never_taken_for_a_complete_one(
    servers: Start, redis_mode: RedisMode
) -> None:
    """Published through a process keeping 10, resumed on one keeping 500: told, not fooled."""
    small = servers(*redis_mode.args(), "--history-size", "10")
    large = servers(*redis_mode.args(), "--history-size", "500")

    async def scenario() -> None:
        ws = await connect(large.ws_url + "/mixed/1?positions=1")
        since = (await next_json(ws))["position"]
        await hang_up(ws)
        for number in range(50):
            await publish(small, "/mixed/1", f"m{number}")
        resumed = await connect(large.ws_url + f"/mixed/1?since={since}")
        outcome = await next_json(resumed)
        assert outcome["recovered"] is False, outcome
        assert outcome["missed"] == 0
        # Within what both kept, the larger one still resumes exactly.
        recent = await connect(large.ws_url + "/mixed/1?positions=1")
        start = (await next_json(recent))["position"]
        recent.close()
        mine = [await publish(large, "/mixed/1", f"n{number}") for number in range(5)]
        again = await connect(large.ws_url + f"/mixed/1?since={start}")
        assert [(await next_json(again))["position"] for _ in mine] == mine
        assert (await next_json(again))["recovered"] is True
        for client in (resumed, again):
            client.close()

    run(scenario(), timeout=60)
