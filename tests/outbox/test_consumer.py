"""The outbox consumed by real server processes: once, in commit order, across crashes.

Every test counts what a WebSocket subscriber receives: nothing missing,
nothing twice, and each writer's rows in the order its transactions committed.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
import pytest
from tornado.websocket import WebSocketClientConnection

import tornado_channels
from tests.helpers.postgres import PostgresServer
from tests.helpers.support import WAIT, RedisServer, ServerProcess, connect, post, run
from tests.helpers.support import until as until_async
from tornado_channels import outbox
from tornado_channels.outbox.schema import lock_key

pytestmark = pytest.mark.processes

Servers = Callable[..., ServerProcess]
SPEC = json.loads((Path(tornado_channels.__file__).parent / "web" / "openapi.json").read_text())


def consumer(servers: Servers, dsn: str, table: str, *args: str) -> ServerProcess:
    """A server consuming ``table``, quick to look again and to take over (tests only)."""
    return servers(
        "--outbox-dsn",
        dsn,
        "--outbox-table",
        table,
        "--outbox-poll-interval",
        "0.2",
        *args,
    )


def health(server: ServerProcess) -> dict[str, Any]:
    """The server's /_/health answer, whatever its status."""
    try:
        with urllib.request.urlopen(server.url + "/_/health", timeout=2) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        answer = json.loads(exc.read())
        answer["http_status"] = exc.code
    return answer


async def leader(processes: list[ServerProcess]) -> ServerProcess:
    """The one process consuming, once there is exactly one."""
    found: list[ServerProcess] = []

    def one() -> bool:
        found[:] = [p for p in processes if health(p)["outbox"]["consuming"]]
        return len(found) == 1

    await until_async(one, WAIT, "one consuming process")
    return found[0]


class Collector:
    """A WebSocket subscriber to ``t/`` that keeps every message, in order of receipt."""

    def __init__(self, ws: WebSocketClientConnection) -> None:
        self.ws = ws
        self.messages: list[str] = []
        self.task = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, server: ServerProcess) -> Collector:
        return cls(await connect(server.ws_url + "/t/"))

    async def _read(self) -> None:
        while (message := await self.ws.read_message()) is not None:
            self.messages.append(message if isinstance(message, str) else message.decode())

    async def until(self, last: str, timeout: float = 30) -> list[str]:
        """Every message up to and including ``last``, once it arrived."""
        await until_async(lambda: last in self.messages, timeout, f"{last!r} received")
        return self.messages

    async def close(self) -> None:
        """Close, and wait for the reader to see the close (at once if the server closed first)."""
        self.ws.close()
        await asyncio.wait_for(self.task, WAIT)


def write(postgres: PostgresServer, table: str, rows: list[tuple[str, str]]) -> None:
    """Insert ``rows`` in one committed transaction, as an application does."""
    with postgres.connect() as connection, connection.transaction():
        outbox.publish_many(connection.cursor(), rows, table=table)


def check_writers(received: list[str], writers: int, count: int) -> None:
    """Each writer's rows arrived exactly once, in the order it committed them."""
    for writer in range(writers):
        mine = [m for m in received if m.startswith(f"{writer}:")]
        assert mine == [f"{writer}:{n}" for n in range(count)], f"writer {writer}"


class Writers:
    """Threads committing ``count`` rows each (``per_transaction`` at a time) to ``t/w<n>``."""

    def __init__(self, postgres: PostgresServer, table: str, writers: int, count: int) -> None:
        self.threads = [
            threading.Thread(target=self._write, args=(postgres, table, w, count), daemon=True)
            for w in range(writers)
        ]
        self.errors: list[str] = []

    def _write(self, postgres: PostgresServer, table: str, writer: int, count: int) -> None:
        try:
            with postgres.connect() as connection:
                for start in range(0, count, 5):
                    with connection.transaction():
                        rows = [(f"t/w{writer}", f"{writer}:{n}") for n in range(start, start + 5)]
                        outbox.publish_many(connection.cursor(), rows, table=table)
        except psycopg.Error as exc:  # Reported by the test's assertion, not lost in the thread.
            self.errors.append(repr(exc))

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for thread in self.threads:
            thread.join(WAIT)
        assert not self.errors


def test_on_the_embedded_broker_rows_arrive_once_in_commit_order_and_a_poison_row_is_set_aside(
    servers: Servers, postgres: PostgresServer, table: str
) -> None:
    """Commit order (not id order), rollbacks and savepoints, a poison row, and a 1200-row burst."""
    server = consumer(servers, postgres.dsn, table, "--outbox-batch-size", "500")

    async def scenario() -> list[str]:
        await leader([server])
        collector = await Collector.open(server)
        with postgres.connect() as held:
            # A takes its id first and commits last: B must come first.
            outbox.publish(held.cursor(), "t/a", "A", table=table)
            write(postgres, table, [("t/b", "B")])
            await collector.until("B")
            postgres.sql(f"INSERT INTO {table} (channel, data) VALUES ('t//poison', 'P')")
            with postgres.connect() as connection:
                outbox.publish(connection.cursor(), "t/a", "rolled back", table=table)
                connection.rollback()
                with connection.transaction():
                    outbox.publish(connection.cursor(), "t/a", "S1", table=table)
                    with connection.transaction():
                        outbox.publish(connection.cursor(), "t/a", "S2", table=table)
                        raise psycopg.Rollback
                    outbox.publish(connection.cursor(), "t/", "S3", table=table)
            held.commit()
        # The trap again, with both still in flight when the consumer looks.
        for round_ in range(5):
            with postgres.connect() as first, postgres.connect() as second:
                outbox.publish(first.cursor(), "t/a", f"first:{round_}", table=table)
                outbox.publish(second.cursor(), "t/a", f"second:{round_}", table=table)
                second.commit()
                first.commit()
        write(postgres, table, [("t/burst", f"burst:{n}") for n in range(1200)])
        received = await collector.until("burst:1199")
        await collector.close()
        return received

    received = run(scenario())
    rounds = [f"{which}:{n}" for n in range(5) for which in ("second", "first")]
    assert received == ["B", "S1", "S3", "A", *rounds, *(f"burst:{n}" for n in range(1200))]
    [(channel, data, reason)] = postgres.sql(f"SELECT channel, data, reason FROM {table}_rejected")
    assert (channel, bytes(data), "empty segment" in reason) == ("t//poison", b"P", True)
    assert postgres.sql(f"SELECT count(*) FROM {table}") == [(0,)]
    answer = health(server)
    jsonschema.Draft202012Validator({**SPEC, "$ref": "#/components/schemas/Health"}).validate(
        answer
    )
    report = answer["outbox"]
    assert (report["published"], report["rejected"], report["connected"]) == (1214, 1, True)


@pytest.mark.parametrize("processes", [2, 3])
def test_processes_on_redis_share_the_table_and_a_leader_killed_mid_batch_loses_and_repeats_nothing(
    servers: Servers,
    postgres: PostgresServer,
    table: str,
    redis_server: RedisServer,
    processes: int,
) -> None:
    """One process consumes at a time; kill -9 each leader mid-stream but the last: exactly once."""
    args = ("--redis-url", redis_server.url, "--outbox-batch-size", "20")
    started = [consumer(servers, postgres.dsn, table, *args) for _ in range(processes)]
    writers, count = 4, 300

    async def scenario() -> list[str]:
        # One subscriber on each process: the last one standing has heard everything.
        collectors = {process: await Collector.open(process) for process in started}
        alive = list(started)
        with Writers(postgres, table, writers, count):
            for kill in range(1, processes):
                current = await leader(alive)
                alive.remove(current)
                heard, enough = collectors.pop(current), 300 * kill
                await until_async(lambda: len(heard.messages) >= enough, 30, "rows received")  # noqa: B023
                current.terminate(signal.SIGKILL)
                await heard.close()
            await leader(alive)
        write(postgres, table, [("t/end", "end")])
        (survivor,) = collectors.values()
        received = await survivor.until("end")
        await survivor.close()
        return received

    received = run(scenario())
    assert len(received) == writers * count + 1
    check_writers(received, writers, count)


def test_a_batch_published_before_its_consumer_died_is_answered_not_published_again(
    servers: Servers, postgres: PostgresServer, table: str, redis_server: RedisServer
) -> None:
    """A recorded batch the broker already took (the crash window) is replayed by its key: once."""
    # What a consumer leaves when killed after its publish and before its delete.
    write(postgres, table, [("t/a", "published once")])
    [(seq,)] = postgres.sql(f"SELECT seq FROM {table}")
    postgres.sql(f"UPDATE {table}_state SET first_seq = %s, last_seq = %s", (seq, seq))
    plain = servers("--redis-url", redis_server.url)

    async def scenario() -> list[str]:
        collector = await Collector.open(plain)
        key = f"outbox-{table}-{seq}-{seq}"
        answer = await post(plain.url + "/t/a", "published once", headers={"Idempotency-Key": key})
        assert answer.code in (200, 201, 202), answer.body
        successor = consumer(servers, postgres.dsn, table, "--redis-url", redis_server.url)
        await leader([successor])
        write(postgres, table, [("t/end", "end")])
        received = await collector.until("end")
        await collector.close()
        return received

    assert run(scenario()) == ["published once", "end"]
    assert postgres.sql(f"SELECT count(*) FROM {table}") == [(0,)]
    assert postgres.sql(f"SELECT first_seq FROM {table}_state") == [(None,)]


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL this test may stop and start again."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.remove()


def test_postgres_restarted_under_load_drains_the_backlog_once_in_order(
    servers: Servers, own_postgres: PostgresServer
) -> None:
    """PostgreSQL stopped and started while rows are written: health says so, nothing is lost."""
    postgres, table = own_postgres, "tornado_channels_outbox"
    server = consumer(servers, postgres.dsn, table)
    committed: list[int] = []
    uncertain: list[int] = []
    stop = threading.Event()

    def keep_writing() -> None:
        # Commits that fail are uncertain (the COMMIT may have landed); they may arrive once.
        number = 0
        while not stop.is_set():
            try:
                with postgres.connect(connect_timeout=2) as connection:
                    while not stop.is_set():
                        with connection.transaction():
                            outbox.publish(connection.cursor(), "t/a", str(number), table=table)
                            number += 1
                        committed.append(number - 1)
            except psycopg.OperationalError:
                if number - 1 not in committed:
                    uncertain.append(number - 1)
                stop.wait(0.05)  # PostgreSQL is down: try again shortly.

    async def scenario() -> list[str]:
        await leader([server])
        collector = await Collector.open(server)
        writer = threading.Thread(target=keep_writing, daemon=True)
        writer.start()
        try:
            await until_async(lambda: len(collector.messages) >= 100, 30, "100 rows received")
            postgres.stop()
            await until_async(
                lambda: not health(server)["outbox"]["connected"], WAIT, "outage seen"
            )
            during = health(server)
            assert (during.get("http_status"), during["status"]) == (None, "ok")
            assert during["outbox"]["error"]
            postgres.start()
            seen = len(committed)
            await until_async(lambda: len(committed) > seen + 100, 30, "writes after the restart")
        finally:
            stop.set()
            writer.join(WAIT)
        write(postgres, table, [("t/end", "end")])
        received = await collector.until("end")
        await collector.close()
        return received

    received = [int(m) for m in run(scenario(), 90)[:-1]]
    assert len(received) == len(set(received))
    assert received == sorted(received)
    assert set(committed) <= set(received) <= set(committed) | set(uncertain)
    assert health(server)["outbox"]["connected"]


def test_rows_committed_while_the_broker_is_down_wait_and_then_arrive_in_order(
    servers: Servers, postgres: PostgresServer, table: str, redis_server: RedisServer
) -> None:
    """Redis killed: the consumer stands aside, the rows wait; Redis back: they arrive, in order."""
    server = consumer(servers, postgres.dsn, table, "--redis-url", redis_server.url)

    async def scenario() -> list[str]:
        await leader([server])
        before = await Collector.open(server)
        write(postgres, table, [("t/a", "before")])
        await before.until("before")
        redis_server.kill()
        await until_async(lambda: health(server).get("http_status") == 503, WAIT, "broker down")
        write(postgres, table, [("t/a", "1"), ("t/b", "2")])
        write(postgres, table, [("t/a", "3")])
        await before.close()
        with postgres.connect(autocommit=True) as holder:
            # Holding the consumer's lock keeps the rows waiting until a subscriber is back.
            await until_async(
                lambda: (
                    holder.execute(
                        "SELECT pg_try_advisory_lock(%s)", (lock_key(table, "consume"),)
                    ).fetchone()
                    == (True,)
                ),
                WAIT,
                "the consumer's lock free",
            )
            redis_server.start()
            server.wait_healthy()
            after = await Collector.open(server)
        write(postgres, table, [("t/end", "end")])
        received = await after.until("end")
        await after.close()
        return received

    assert run(scenario()) == ["1", "2", "3", "end"]
    assert postgres.sql(f"SELECT count(*) FROM {table}") == [(0,)]
