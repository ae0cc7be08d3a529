"""The PostgreSQL outbox in ``make bench``: from ``COMMIT`` to a subscriber's receipt.

- ``outbox-drain-1consumer`` / ``outbox-drain-2consumers``: writers commit
  rows (10 per transaction) as fast as they can while one subscriber of
  ``t/`` counts them; rows per second from the first commit to the last
  receipt.  With two processes on a private Redis only one consumes at a
  time (the other stands by), so the second figure is the price of standing by.
- ``outbox-latency``: one row per transaction at a steady rate; p50 and p99
  from the moment ``COMMIT`` returned to the moment the subscriber read it.

PostgreSQL CPU per row counts the postmaster and every backend (the
writers', the consumer's), from /proc.  The private PostgreSQL runs with
``fsync=off`` (tests/helpers/postgres.py): the figures are the outbox's
cost, not the disk's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import psycopg
from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import websocket_connect

from tests.bench.client import CLK_TCK, SCENARIO_TIMEOUT
from tests.helpers import RedisServer, ServerProcess, free_port
from tests.helpers.postgres import PostgresServer, remove_template
from tornado_channels.outbox.schema import DEFAULT_TABLE, insert_sql

WRITERS = 4
PER_TRANSACTION = 10


def postgres_cpu(pid: int) -> float:
    """CPU seconds of the postmaster, its reaped backends, and its live children."""

    def times(child: int, reaped: bool) -> float:
        with open(f"/proc/{child}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        used = int(fields[11]) + int(fields[12])
        return (used + (int(fields[13]) + int(fields[14]) if reaped else 0)) / CLK_TCK

    total = times(pid, reaped=True)
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        for child in f.read().split():
            # One that ended meanwhile is counted in the postmaster's reaped time.
            with contextlib.suppress(FileNotFoundError):
                total += times(int(child), reaped=False)
    return total


class Subscriber:
    """A WebSocket subscriber to ``t/`` noting when each message arrived."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[str, float]] = []

    async def run(self, port: int, ready: asyncio.Event) -> None:
        ws = await websocket_connect(f"ws://127.0.0.1:{port}/t/")
        ready.set()
        try:
            while (message := await ws.read_message()) is not None:
                text = message if isinstance(message, str) else message.decode()
                self.arrivals.append((text, time.perf_counter()))
                if text == "end":
                    return
        finally:
            ws.close()


async def write(dsn: str, writer: int, rows: int, committed: dict[str, float]) -> None:
    """Commit ``rows`` rows, PER_TRANSACTION at a time, noting when each COMMIT returned."""
    async with await psycopg.AsyncConnection.connect(dsn) as connection:
        for start in range(0, rows, PER_TRANSACTION):
            batch = [f"{writer}:{n}" for n in range(start, min(start + PER_TRANSACTION, rows))]
            async with connection.cursor() as cursor:
                await cursor.executemany(
                    insert_sql(DEFAULT_TABLE), [("t/a", text.encode()) for text in batch]
                )
            await connection.commit()
            now = time.perf_counter()
            committed.update(dict.fromkeys(batch, now))


async def end(dsn: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as connection:
        await connection.execute(insert_sql(DEFAULT_TABLE), ("t/end", b"end"))


def check(subscriber: Subscriber, expected: int) -> dict[str, Any]:
    """Lost, duplicated and out-of-order rows (per writer) at the subscriber."""
    texts = [text for text, _ in subscriber.arrivals if text != "end"]
    last: dict[str, int] = {}
    out_of_order = 0
    for text in texts:
        writer, number = text.split(":")
        if int(number) <= last.get(writer, -1):
            out_of_order += 1
        last[writer] = int(number)
    distinct = len(set(texts))
    return {
        "lost": expected - distinct,
        "duplicated": len(texts) - distinct,
        "out_of_order": out_of_order,
    }


async def drain(
    scenario: str, postgres: PostgresServer, consumers: list[ServerProcess], rows: int
) -> dict[str, Any]:
    """Writers commit ``rows`` in all; rows/s from the first commit to the last receipt."""
    assert postgres.process is not None
    subscriber, ready = Subscriber(), asyncio.Event()
    reading = asyncio.ensure_future(subscriber.run(consumers[-1].port, ready))
    await asyncio.wait_for(ready.wait(), SCENARIO_TIMEOUT)
    committed: dict[str, float] = {}
    cpu = postgres_cpu(postgres.process.pid)
    started = time.perf_counter()
    per_writer = rows // WRITERS
    await asyncio.wait_for(
        asyncio.gather(*(write(postgres.dsn, w, per_writer, committed) for w in range(WRITERS))),
        SCENARIO_TIMEOUT,
    )
    await end(postgres.dsn)
    await asyncio.wait_for(reading, SCENARIO_TIMEOUT)
    last = max(at for text, at in subscriber.arrivals if text != "end")
    wall = last - started
    total = per_writer * WRITERS
    return {
        "target": "ours",
        "server": f"tornado-channels ({len(consumers)} consuming)",
        "scenario": scenario,
        "sizes": f"{total} rows, {WRITERS} writers x {PER_TRANSACTION}/tx",
        "rows_per_s": total / wall,
        # How fast the writers committed: the consumer cannot outrun them.
        "commits_per_s": total / (max(committed.values()) - started),
        "postgres_cpu_us_per_row": (postgres_cpu(postgres.process.pid) - cpu) / total * 1e6,
        "wall_s": wall,
        **check(subscriber, total),
    }


async def latency(
    postgres: PostgresServer, server: ServerProcess, rate: float, seconds: float
) -> dict[str, Any]:
    """One row per transaction at ``rate``/s: COMMIT returned -> the subscriber read it."""
    subscriber, ready = Subscriber(), asyncio.Event()
    reading = asyncio.ensure_future(subscriber.run(server.port, ready))
    await asyncio.wait_for(ready.wait(), SCENARIO_TIMEOUT)
    committed: dict[str, float] = {}
    count = int(rate * seconds)
    async with await psycopg.AsyncConnection.connect(postgres.dsn, autocommit=True) as connection:
        started = time.perf_counter()
        for n in range(count):
            # Paced against the schedule, not slept between: a slow commit does not shift the rest.
            await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
            await connection.execute(insert_sql(DEFAULT_TABLE), ("t/a", f"0:{n}".encode()))
            committed[f"0:{n}"] = time.perf_counter()
    await end(postgres.dsn)
    await asyncio.wait_for(reading, SCENARIO_TIMEOUT)
    delays = sorted(
        (at - committed[text]) * 1000 for text, at in subscriber.arrivals if text in committed
    )
    return {
        "target": "ours",
        "server": "tornado-channels (1 process)",
        "scenario": "outbox-latency",
        "sizes": f"{count} rows at {rate:.0f}/s, 1 per tx",
        "p50_ms": statistics.median(delays),
        "p99_ms": delays[int(len(delays) * 0.99) - 1],
        "max_ms": delays[-1],
        **check(subscriber, count),
    }


async def outbox_suite(
    start_server: Callable[..., ServerProcess], rows: int
) -> list[dict[str, Any]]:
    """The outbox scenarios: one consumer on the embedded broker, then two on a private Redis."""
    results: list[dict[str, Any]] = []
    postgres = PostgresServer().start()
    redis = RedisServer(free_port()).start()
    servers: list[ServerProcess] = []
    try:
        args = ("--outbox-dsn", postgres.dsn)
        servers.append(start_server(*args))
        await _consuming(servers[0])
        results.append(await drain("outbox-drain-1consumer", postgres, servers, rows))
        print(results[-1], flush=True)
        results.append(await latency(postgres, servers[0], 200, 3))
        print(results[-1], flush=True)
        servers.pop().terminate()
        for _ in range(2):
            servers.append(start_server(*args, "--redis-url", redis.url))
        await _consuming(*servers)
        results.append(await drain("outbox-drain-2consumers", postgres, servers, rows))
        print(results[-1], flush=True)
    finally:
        for server in servers:
            server.terminate()
            server.log.unlink(missing_ok=True)
        redis.stop()
        postgres.remove()
        remove_template()
    return results


async def _consuming(*servers: ServerProcess) -> None:
    """Until one of ``servers`` consumes the outbox (and so has created the table)."""
    client = AsyncHTTPClient()
    deadline = time.monotonic() + SCENARIO_TIMEOUT
    while time.monotonic() < deadline:
        for server in servers:
            response = await client.fetch(server.url + "/_/health", raise_error=False)
            if json.loads(response.body).get("outbox", {}).get("consuming"):
                return
        await asyncio.sleep(0.05)
    raise AssertionError("no server consuming the outbox")
