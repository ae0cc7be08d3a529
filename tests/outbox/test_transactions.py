"""The outbox's numbering against a real PostgreSQL: commit order, rollbacks, savepoints."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.helpers.postgres import PostgresServer
from tornado_channels import outbox
from tornado_channels.outbox.schema import schema_sql

pytestmark = pytest.mark.processes


def numbered(postgres: PostgresServer, table: str) -> list[tuple[str, int | None]]:
    """(data, seq) of every row other sessions see, in id order."""
    rows = postgres.sql(f"SELECT data, seq FROM {table} ORDER BY id")
    return [(bytes(data).decode(), seq) for data, seq in rows]


def test_a_committed_row_is_numbered_and_a_rolled_back_one_is_gone(
    postgres: PostgresServer, table: str
) -> None:
    """Commit numbers each row once; a rolled-back transaction leaves no row and no number."""
    with postgres.connect() as connection:
        with connection.transaction():
            outbox.publish_many(connection.cursor(), [("a", b"1"), ("a", "2")], table=table)
        with connection.transaction():
            outbox.publish(connection.cursor(), "a", b"rolled back", table=table)
            raise psycopg.Rollback
        with connection.transaction():
            outbox.publish(connection.cursor(), "b/", b"3", table=table)
    rows = numbered(postgres, table)
    assert [data for data, _ in rows] == ["1", "2", "3"]
    seqs = [seq for _, seq in rows]
    assert None not in seqs
    assert seqs == sorted(seqs)


def test_a_savepoint_rolled_back_takes_its_rows_and_nothing_else(
    postgres: PostgresServer, table: str
) -> None:
    """Rows of a rolled-back savepoint are never numbered; the rest of the transaction is."""
    with postgres.connect() as connection, connection.transaction():
        outbox.publish(connection.cursor(), "a", b"before", table=table)
        with connection.transaction():
            outbox.publish(connection.cursor(), "a", b"in the savepoint", table=table)
            raise psycopg.Rollback
        outbox.publish(connection.cursor(), "a", b"after", table=table)
    assert [data for data, _ in numbered(postgres, table)] == ["before", "after"]
    assert all(seq is not None for _, seq in numbered(postgres, table))


def test_seq_follows_commit_order_when_ids_do_not(postgres: PostgresServer, table: str) -> None:
    """A takes its id first and commits last: A's seq is above B's, so a reader never skips it."""
    for _ in range(5):
        with postgres.connect() as first, postgres.connect() as second:
            outbox.publish(first.cursor(), "a", b"A", table=table)
            outbox.publish(second.cursor(), "a", b"B", table=table)
            # Until A commits, only B is visible, and numbered.
            second.commit()
            assert [data for data, _ in numbered(postgres, table)] == ["B"]
            first.commit()
        (a, a_seq), (b, b_seq) = numbered(postgres, table)
        assert (a, b) == ("A", "B")
        assert a_seq is not None
        assert b_seq is not None
        assert b_seq < a_seq
        postgres.sql(f"DELETE FROM {table}")


def test_seq_is_commit_order_under_concurrent_commits(postgres: PostgresServer, table: str) -> None:
    """Eight sessions committing at once: each sees its rows numbered in the order it committed."""

    def write(writer: int) -> None:
        with postgres.connect() as connection:
            for number in range(40):
                with connection.transaction():
                    outbox.publish(connection.cursor(), "a", f"{writer}:{number}", table=table)

    with ThreadPoolExecutor(8) as pool:
        for done in [pool.submit(write, writer) for writer in range(8)]:
            done.result(30)
    rows = postgres.sql(f"SELECT data FROM {table} ORDER BY seq")
    assert len(rows) == 320
    for writer in range(8):
        mine = [bytes(data).decode() for (data,) in rows if bytes(data).startswith(b"%d:" % writer)]
        assert mine == [f"{writer}:{number}" for number in range(40)]


def test_the_schema_is_idempotent_and_created_by_two_sessions_at_once(
    postgres: PostgresServer,
) -> None:
    """Running the DDL again, or from two sessions under the consumer's lock, changes nothing."""
    name = "outbox_twice"
    barrier = threading.Barrier(2)

    def create() -> None:
        with postgres.connect() as connection, connection.transaction():
            barrier.wait(10)
            connection.execute("SELECT pg_advisory_xact_lock(1)")
            connection.execute(schema_sql(name).encode())

    with ThreadPoolExecutor(2) as pool:
        for done in [pool.submit(create) for _ in range(2)]:
            done.result(30)
    postgres.sql(schema_sql(name))
    [(triggers,)] = postgres.sql(
        "SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
        (name,),
    )
    assert triggers == 1
    with postgres.connect() as connection, connection.transaction():
        outbox.publish(connection.cursor(), "a", b"x", table=name)
    assert [data for data, _ in numbered(postgres, name)] == ["x"]
