"""The server side of the outbox: publish what was committed, once, in commit order.

One process at a time consumes a table: the one holding a session-level
advisory lock (``pg_try_advisory_lock``).  The others try again every poll
interval; a leader that dies, even by ``kill -9``, ends its session and so
releases the lock.  The leader ``LISTEN``s for the trigger's ``NOTIFY``
(with a slow poll as a fallback) and then, a batch at a time:

1. reads the next rows in commit order (``seq``, see schema.py);
2. records the batch's first and last ``seq`` in ``<table>_state``;
3. publishes the batch through the node as one operation, with an
   Idempotency-Key made of the table and that range;
4. in one statement, moves rows naming an invalid channel to
   ``<table>_rejected``, deletes the batch, and clears the record.

A leader that dies between 3 and 4 leaves the record behind: its successor
publishes exactly that range again, with the same key and the same content,
and the broker answers it from its memory of the key instead of publishing
twice.  A broker that is unavailable is retried with backoff (the record
keeps the order); this process then stands aside, so a process whose broker
works may take over.  PostgreSQL unreachable: reconnect with capped backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import psycopg

from ..brokers.base import BrokerUnavailable, PublishError
from ..core.channels import InvalidChannel, Target
from ..node import Node
from . import parse_channel
from .schema import lock_key, rejected_table, schema_sql, state_table
from .settings import OutboxSettings

log = logging.getLogger("tornado_channels.outbox")

#: A batch is cut once its payloads reach this many bytes (one row always goes).
MAX_BATCH_BYTES = 1 << 20
#: Seconds any one round trip to PostgreSQL may take before the connection is given up.
QUERY_TIMEOUT = 30.0
#: The longest wait between reconnections or publish retries, in seconds.
MAX_BACKOFF = 5.0


class _StandAside(Exception):
    """The broker is unavailable: let a process whose broker works consume."""


def backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` failures in a row: 0.1, 0.2, 0.4, ... up to 5."""
    return float(min(0.1 * 2 ** min(failures, 10), MAX_BACKOFF))


class OutboxConsumer:
    """Consumes one outbox table into ``node``'s channels while started."""

    def __init__(self, node: Node, settings: OutboxSettings) -> None:
        assert settings.outbox_dsn is not None
        self.node = node
        self.dsn = settings.outbox_dsn
        self.table = settings.outbox_table
        self.poll_interval = settings.outbox_poll_interval
        self.batch_size = settings.outbox_batch_size
        # Checked now: the table name is spliced into SQL.
        self.schema = schema_sql(self.table)
        self.rejected_table = rejected_table(self.table)
        self.state_table = state_table(self.table)
        self.consume_key = lock_key(self.table, "consume")
        self.schema_key = lock_key(self.table, "schema")
        #: Whether a PostgreSQL session is open now.
        self.connected = False
        #: Whether this process is the table's consumer now (holds its lock).
        self.consuming = False
        #: Rows published, and rows moved to the rejected table, by this process.
        self.published = 0
        self.rejected = 0
        #: The last failure, until the next success.
        self.error: str | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # The batch recorded in the state table and not yet deleted: (first, last) seq.
        self._batch: tuple[int, int] | None = None

    def start(self) -> None:
        """Start consuming in the background (connecting as soon as PostgreSQL answers)."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, timeout: float) -> None:
        """Finish the batch in progress (up to ``timeout`` seconds), then stop."""
        self._stopping.set()
        if self._task is None:
            return
        _done, pending = await asyncio.wait({self._task}, timeout=timeout)
        if pending:
            # Safe at any point: an unfinished batch is replayed by the next consumer.
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def health(self) -> dict[str, Any]:
        """What ``/_/health`` says of the outbox."""
        return {
            "table": self.table,
            "connected": self.connected,
            "consuming": self.consuming,
            "published": self.published,
            "rejected": self.rejected,
            "error": self.error,
        }

    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                async with asyncio.timeout(QUERY_TIMEOUT):
                    connection = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                self._failed("cannot connect to PostgreSQL", exc, failures)
            else:
                try:
                    async with connection:
                        self.connected = True
                        failures = 0
                        await self._create_schema(connection)
                        self.error = None
                        await self._serve(connection)
                except (psycopg.Error, OSError, TimeoutError) as exc:
                    self._failed("PostgreSQL connection lost", exc, failures)
                finally:
                    self.connected = self.consuming = False
            await self._pause(backoff(failures))
            failures += 1

    def _failed(self, what: str, exc: BaseException, failures: int) -> None:
        self.error = f"{what}: {exc or type(exc).__name__}"
        # Once per outage at WARNING, then quietly while it lasts.
        level = logging.WARNING if failures == 0 else logging.DEBUG
        log.log(level, "outbox %s: %s; retrying", self.table, self.error)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _query(
        self, connection: psycopg.AsyncConnection[Any], sql: Any, params: Any = None
    ) -> list[tuple[Any, ...]]:
        async with asyncio.timeout(QUERY_TIMEOUT):
            cursor = await connection.execute(sql, params)
            return await cursor.fetchall() if cursor.description else []

    async def _create_schema(self, connection: psycopg.AsyncConnection[Any]) -> None:
        # Under a lock: CREATE ... IF NOT EXISTS races with itself in another session.
        async with asyncio.timeout(QUERY_TIMEOUT), connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock(%s)", (self.schema_key,))
            await connection.execute(self.schema.encode())

    async def _serve(self, connection: psycopg.AsyncConnection[Any]) -> None:
        """Stand by until this process may consume, consume, and stand by again."""
        while not self._stopping.is_set():
            # Without a broker, consuming would only hold up a process that has one.
            if self.node.connected:
                [(taken,)] = await self._query(
                    connection, "SELECT pg_try_advisory_lock(%s)", (self.consume_key,)
                )
                if taken:
                    try:
                        await self._consume(connection)
                    except _StandAside:
                        log.warning("outbox %s: broker unavailable, standing aside", self.table)
                    finally:
                        self.consuming = False
                    await self._query(
                        connection, "SELECT pg_advisory_unlock(%s)", (self.consume_key,)
                    )
                    continue
            await self._pause(self.poll_interval)

    async def _consume(self, connection: psycopg.AsyncConnection[Any]) -> None:
        self.consuming = True
        log.info("outbox %s: consuming", self.table)
        await self._query(connection, f"LISTEN {self.table}")
        try:
            # What a predecessor recorded and did not finish: published first, as it was.
            [(first, last)] = await self._query(
                connection, f"SELECT first_seq, last_seq FROM {self.state_table}"
            )
            self._batch = None if first is None else (first, last)
            failures = 0
            while not self._stopping.is_set():
                try:
                    more = await self._publish_batch(connection)
                except PublishError as exc:
                    self._failed("publish failed", exc, failures)
                    await self._pause(backoff(failures))
                    failures += 1
                    continue
                failures = 0
                self.error = None
                if not more:
                    await self._wake(connection)
        finally:
            await self._query(connection, f"UNLISTEN {self.table}")

    async def _wake(self, connection: psycopg.AsyncConnection[Any]) -> None:
        """Return on a NOTIFY (received now or while busy), after the poll interval, or on stop."""

        async def notified() -> None:
            async for _ in connection.notifies(timeout=self.poll_interval, stop_after=1):
                pass

        waiter = asyncio.ensure_future(notified())
        stopper = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        await asyncio.gather(stopper, return_exceptions=True)
        if waiter.done():
            waiter.result()  # A lost connection raises here.
        else:
            # Stopping: nothing is in flight on the connection while it waits.
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)

    async def _publish_batch(self, connection: psycopg.AsyncConnection[Any]) -> bool:
        """Publish the recorded batch, or the next rows; return whether more may be waiting.

        The record (here and in the state table) stays set until the rows
        are gone: a failure leaves it for the retry, or the next consumer,
        to publish again: the same rows, under the same key.
        """
        columns = "id, seq, channel, data"
        batch = self._batch
        if batch is not None:
            rows = await self._query(
                connection,
                f"SELECT {columns} FROM {self.table} WHERE seq BETWEEN %s AND %s ORDER BY seq",
                batch,
            )
            more = True
        else:
            rows = await self._query(
                connection,
                f"SELECT {columns} FROM {self.table} WHERE seq IS NOT NULL ORDER BY seq LIMIT %s",
                (self.batch_size,),
            )
            if not rows:
                return False
            fetched = len(rows)
            rows = cut_batch(rows)
            more = fetched == self.batch_size or len(rows) < fetched
            batch = (rows[0][1], rows[-1][1])
            await self._query(
                connection,
                f"UPDATE {self.state_table} SET first_seq = %s, last_seq = %s",
                batch,
            )
            self._batch = batch
        messages: list[tuple[Target, bytes]] = []
        rejected_ids: list[int] = []
        reasons: list[str] = []
        for row_id, seq, channel, data in rows:
            try:
                messages.append((parse_channel(channel), bytes(data)))
            except InvalidChannel as exc:
                log.warning("outbox %s: row %d (seq %d) rejected: %s", self.table, row_id, seq, exc)
                rejected_ids.append(row_id)
                reasons.append(str(exc))
        if messages:
            key = f"outbox-{self.table}-{batch[0]}-{batch[1]}"
            try:
                receipt = await self.node.submit(messages, idempotency_key=key, batch=True)
            except BrokerUnavailable as exc:
                raise _StandAside from exc
            if receipt.replayed:
                log.info("outbox %s: seq %d-%d had been published: not again", self.table, *batch)
            else:
                self.published += len(messages)
        # One statement, so atomic: the rejected rows moved, the batch gone, the record cleared.
        await self._query(
            connection,
            f"""WITH moved AS (
                INSERT INTO {self.rejected_table} (id, seq, channel, data, created_at, reason)
                SELECT o.id, o.seq, o.channel, o.data, o.created_at, r.reason FROM {self.table} o
                JOIN unnest(%s::bigint[], %s::text[]) AS r(id, reason) ON o.id = r.id
            ), gone AS (
                DELETE FROM {self.table} WHERE seq BETWEEN %s AND %s
            ) UPDATE {self.state_table} SET first_seq = NULL, last_seq = NULL""",
            (rejected_ids, reasons, *batch),
        )
        self._batch = None
        self.rejected += len(rejected_ids)
        return more


def cut_batch(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The first rows of ``rows`` whose payloads fit :data:`MAX_BATCH_BYTES` (at least one)."""
    total = 0
    for count, row in enumerate(rows):
        total += len(row[3])
        if total > MAX_BATCH_BYTES and count:
            return rows[:count]
    return rows
