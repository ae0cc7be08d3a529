"""Redis holds what is live, not what ever was: after a burst of channels expires, its baseline.

Two real processes on each Redis mode publish to and subscribe on hundreds of
distinct channels (per-user channels, subtrees, idempotent publishes), then
everyone leaves.  Once the history age has passed, the keys and hash fields
under the deployment's prefix (history, idempotency keys, subscription watches and presence)
are exactly those from before the burst.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import redis
from tornado.websocket import WebSocketClientConnection

from ..helpers import (
    WAIT,
    RedisMode,
    RedisServer,
    ServerProcess,
    connect,
    hang_up,
    post,
    receive,
    run,
    until,
)
from ..helpers.redis_modes import Cluster, Sentinel

Start = Callable[..., ServerProcess]

pytestmark = pytest.mark.processes

#: Distinct per-user channels in the burst.
USERS = 300
#: Users served at once.
BATCH = 50
#: First segments that land in every partition of 16 (see test_redis_modes.SPREAD).
SPREAD = [f"s{number}" for number in range(40)]
#: Short enough that the burst expires within the test, long enough to deliver
#: most of it before any of it expires, even on a loaded machine.
FLAGS = ["--history-age", "5", "--idempotency-ttl", "5"]


def masters(mode: RedisMode) -> list[int]:
    """The ports of the masters holding the deployment's keys now."""
    if isinstance(mode, Cluster):
        return [master.port for master in mode.masters()]
    if isinstance(mode, Sentinel):
        return [mode.master_port()]
    server = mode.server  # type: ignore[attr-defined]
    assert isinstance(server, RedisServer)
    return [server.port]


def keys(mode: RedisMode) -> dict[str, int]:
    """Every key under the prefix, on every master, with its size (fields, members, entries)."""
    sizes: dict[str, int] = {}
    command = {b"hash": "HLEN", b"zset": "ZCARD", b"list": "LLEN", b"stream": "XLEN"}
    for port in masters(mode):
        with redis.Redis(port=port, socket_timeout=WAIT) as client:
            names = list(client.scan_iter(match=mode.prefix + "*", count=1000))
            kinds = client.pipeline(transaction=False)
            for name in names:
                kinds.type(name)
            counts = client.pipeline(transaction=False)
            for name, kind in zip(names, kinds.execute(), strict=True):
                counts.execute_command(command.get(kind, "EXISTS"), name)
            for name, size in zip(names, counts.execute(), strict=True):
                if size:  # Expired between the scan and now: not there.
                    sizes[name.decode()] = int(size)
    return sizes


def shape(sizes: dict[str, int]) -> dict[str, int]:
    """Key kinds and their total size, without the names (``meta``, ``h:c:``, ``i:``...)."""
    kinds: dict[str, int] = {}
    for key, size in sizes.items():
        kind = key.split("}", 1)[1]
        kind = kind.split(":", 1)[0] + ":" if ":" in kind else kind
        kinds[kind] = kinds.get(kind, 0) + size
    return kinds


def test_keys_and_fields_return_to_their_baseline_after_a_burst_expires(
    servers: Start, redis_mode: RedisMode
) -> None:
    """300 users' channels, subscribed, published and left: Redis keys come back to baseline."""
    a = servers(*redis_mode.args(), *FLAGS)
    b = servers(*redis_mode.args(), *FLAGS)

    async def scenario() -> None:
        # Baseline: every partition has its state and its live processes (presence's
        # ``pn``), and nothing else is live.
        for name in SPREAD:
            assert (await post(a.url + f"/{name}/warm", "x")).code == 202
        await until(
            lambda: set(shape(keys(redis_mode))) <= {"meta", "pn"},
            timeout=30,
            what="warm-up expired",
        )
        baseline = keys(redis_mode)

        async def user(number: int) -> WebSocketClientConnection:
            home = SPREAD[number % len(SPREAD)]
            path = f"/{home}/u{number}/feed"
            ws = await connect(b.ws_url + path)
            headers = {"Idempotency-Key": f"k{number}"}
            assert (await post(a.url + path, f"hi {number}", headers=headers)).code == 202
            assert (await post(a.url + f"/{home}/u{number}/", "below")).code == 202
            assert await receive(ws) == f"hi {number}"
            assert await receive(ws) == "below"
            return ws

        sockets = []
        for start in range(0, USERS, BATCH):
            sockets += await asyncio.gather(*(user(n) for n in range(start, start + BATCH)))
        peak = shape(keys(redis_mode))
        # Most of the burst is still there (the first users' may have expired).
        assert peak["h:"] > USERS, peak
        assert peak["i:"] > USERS / 2, peak
        assert peak.get("pc", 0) > 0, peak  # presence counted the subscribers
        for ws in sockets:
            await hang_up(ws)
        # Gone with the history age (plus its grace), without a publish after it.
        await until(lambda: keys(redis_mode) == baseline, timeout=30, what="keys back to baseline")
        assert len(baseline) <= 2 * redis_mode_partitions(redis_mode)
        await asyncio.sleep(0)

    run(scenario(), timeout=120)


def redis_mode_partitions(mode: RedisMode) -> int:
    """History partitions of the mode (16 on a cluster, else one)."""
    return 16 if isinstance(mode, Cluster) else 1
