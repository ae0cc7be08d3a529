"""Presence across processes on every Redis mode: counts, pages, and workers that die."""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections.abc import Callable
from typing import Any

import pytest

from ..helpers import (
    RedisMode,
    RedisServer,
    ServerProcess,
    connect,
    free_port,
    get,
    hang_up,
    next_json,
    raw_websocket,
    run,
    silent,
    until,
)

Start = Callable[..., ServerProcess]

pytestmark = pytest.mark.processes


async def presence(server: ServerProcess, path: str) -> dict[str, Any]:
    response = await get(server.url + "/_/presence" + path)
    assert response.code == 200, response.body
    return json.loads(response.body)  # type: ignore[no-any-return]


async def settles(server: ServerProcess, path: str, key: str, expected: Any) -> None:
    """Wait (bounded) until ``server`` answers ``expected`` for ``key`` of ``path``'s presence."""

    async def reached() -> bool:
        return bool((await presence(server, path))[key] == expected)

    await until(reached, timeout=15, what=f"{path} {key} == {expected}")


def test_counts_cover_every_process_and_fall_when_subscribers_leave(
    servers: Start, redis_mode: RedisMode
) -> None:
    """Subscribers on A and B count on both within seconds; they stop counting once closed."""
    a = servers(*redis_mode.args())
    b = servers(*redis_mode.args())

    async def scenario() -> None:
        on_a = [await connect(a.ws_url + "/users/1") for _ in range(2)]
        on_b = [await connect(b.ws_url + "/users/1"), await connect(b.ws_url + "/users/2/")]
        root = await connect(a.ws_url + "/")
        for server in (a, b):
            await settles(server, "/users/1", "subscribers", 3)
            await settles(server, "/users/", "subscribers", 4)
            await settles(server, "/", "subscribers", 5)
        assert (await presence(b, "/users/"))["channels"] == {"users/1": 3, "users/2/": 1}
        on_a[0].close()
        on_b[1].close()
        await settles(b, "/users/1", "subscribers", 2)
        await settles(a, "/users/", "channels", {"users/1": 2})
        for ws in (*on_a[1:], on_b[0], root):
            await hang_up(ws)
        await settles(a, "/", "subscribers", 0)

    run(scenario(), timeout=90)


def test_a_killed_worker_stops_counting_within_its_ttl(
    servers: Start, redis_mode: RedisMode
) -> None:
    """Kill -9 of a worker: its subscribers leave the count within the presence TTL."""
    ttl = ("--presence-ttl", "2")
    a = servers(*redis_mode.args(), *ttl)
    b = servers(*redis_mode.args(), *ttl)

    async def scenario() -> None:
        kept = await connect(a.ws_url + "/rooms/1")
        doomed = [await connect(b.ws_url + "/rooms/1") for _ in range(3)]
        await settles(a, "/rooms/1", "subscribers", 4)
        b.terminate(signal.SIGKILL)
        # The TTL, one renewal period, and the poll: well inside the bounded wait.
        await settles(a, "/rooms/1", "subscribers", 1)
        await settles(a, "/rooms/", "subscribers", 1)
        kept.close()
        for ws in doomed:
            await hang_up(ws)

    run(scenario(), timeout=60)


def test_pages_list_every_channel_once_while_others_come_and_go(
    servers: Start, redis_mode: RedisMode
) -> None:
    """Paging through 60 channels, with others joining and leaving between pages: each once."""
    a = servers(*redis_mode.args())
    b = servers(*redis_mode.args())

    async def scenario() -> None:
        steady = [f"feed/{n:03d}" for n in range(0, 120, 2)]
        clients = [
            await connect((a if n % 2 else b).ws_url + "/" + name) for n, name in enumerate(steady)
        ]
        await settles(a, "/feed/", "subscribers", len(steady))
        seen: list[str] = []
        churn = []
        cursor = None
        for page_number in range(100):
            query = "/feed/?limit=7" + (f"&cursor={cursor}" if cursor else "")
            answer = await presence(a, query)
            seen += answer["channels"]
            # Odd names come and go between pages, before and after the cursor.
            churn.append(await connect(b.ws_url + f"/feed/{(page_number * 14 + 1) % 120:03d}"))
            if len(churn) > 3:
                churn.pop(0).close()
            cursor = answer["cursor"]
            if cursor is None:
                break
        listed = [name for name in seen if name in set(steady)]
        assert listed == steady, "every steady channel once, in order"
        assert len(seen) == len(set(seen)), "no name twice"
        for ws in clients + churn:
            await hang_up(ws)

    run(scenario(), timeout=90)


def test_counts_come_back_after_redis_forgets_them(servers: Start) -> None:
    """A Redis emptied under running workers gets each worker's whole tally again, unasked."""
    redis = RedisServer(free_port()).start()
    try:
        a = servers("--redis-url", redis.url, "--presence-ttl", "3")

        async def scenario() -> None:
            clients = [await connect(a.ws_url + f"/shop/{n}") for n in range(5)]
            await settles(a, "/shop/", "subscribers", 5)
            redis.cli("FLUSHALL")
            assert (await presence(a, "/shop/"))["subscribers"] == 0
            # The next renewal finds itself unknown and sends everything.
            await settles(a, "/shop/", "subscribers", 5)
            assert len((await presence(a, "/shop/"))["channels"]) == 5
            for ws in clients:
                await hang_up(ws)

        run(scenario(), timeout=60)
    finally:
        redis.stop()


@pytest.mark.parametrize("redis_mode", ["standalone"], indirect=True)
def test_counts_are_exact_after_500_overlapping_joins_leaves_and_resets(
    servers: Start, redis_mode: RedisMode
) -> None:
    """500 subscribers come and go on two processes, overlapping, some reset: the count is exact."""
    a = servers(*redis_mode.args())
    b = servers(*redis_mode.args())

    async def scenario() -> None:
        rng = random.Random(14)
        kept: list[Any] = []
        pending: list[Any] = []
        for number in range(500):
            server = a if number % 2 else b
            channel = f"/churn/{rng.randrange(5)}"
            if rng.random() < 0.3:
                # A reset mid-life: a raw handshake whose socket is aborted.
                _, writer = await raw_websocket(server.port, channel)
                pending.append(writer)
            else:
                pending.append(await connect(server.ws_url + channel))
            if len(pending) > 8:
                victim = pending.pop(rng.randrange(len(pending)))
                if rng.random() < 0.1:
                    kept.append(victim)
                elif isinstance(victim, asyncio.StreamWriter):
                    victim.transport.abort()
                else:
                    victim.close()
        kept += pending
        for server in (a, b):
            await settles(server, "/churn/", "subscribers", len(kept))
        for client in kept:
            if isinstance(client, asyncio.StreamWriter):
                client.transport.abort()
            else:
                client.close()
        await settles(a, "/churn/", "subscribers", 0)
        await settles(b, "/churn/", "channels", {})

    run(scenario(), timeout=120)


def test_joins_and_leaves_are_deployment_wide(servers: Start, redis_mode: RedisMode) -> None:
    """A watcher on A hears a user's first process join and last one leave; kill -9 is a leave."""
    from ..web.test_tokens import SECRET, mint

    tokens = ("--token-secret", SECRET, "--public", "/", "--presence-ttl", "2")
    a = servers(*redis_mode.args(), *tokens)
    b = servers(*redis_mode.args(), *tokens)
    c = servers(*redis_mode.args(), *tokens)

    async def event(ws: Any) -> dict[str, Any]:
        return await next_json(ws, timeout=15)

    async def scenario() -> None:
        watcher = await connect(a.ws_url + "/room/7?positions=1&presence=1")
        assert (await next_json(watcher))["recovered"] is True
        token = mint(["/"], sub="u7", ttl=600)
        on_b = await connect(b.ws_url + f"/room/7?token={token}")
        assert await event(watcher) == {"presence": "join", "user": "u7", "channel": "room/7"}
        # The same user on another process: not a join.
        on_a = await connect(a.ws_url + f"/room/7?token={token}")
        await silent(watcher, 1.5)
        on_b.close()
        await silent(watcher, 1.5)
        on_a.close()
        assert await event(watcher) == {"presence": "leave", "user": "u7", "channel": "room/7"}
        # A process killed: its users leave within the TTL.
        doomed = await connect(c.ws_url + f"/room/7?token={mint(['/'], sub='u9', ttl=600)}")
        assert await event(watcher) == {"presence": "join", "user": "u9", "channel": "room/7"}
        c.terminate(signal.SIGKILL)
        assert await event(watcher) == {"presence": "leave", "user": "u9", "channel": "room/7"}
        doomed.close()
        await hang_up(watcher)

    run(scenario(), timeout=90)
