"""Publish in your database transaction: the application side of the PostgreSQL outbox.

Insert the message in the same transaction as the change it announces; the
server (``--outbox-dsn``) publishes what was committed, exactly once, in
commit order, and never what was rolled back::

    from django.db import connection, transaction
    from tornado_channels import outbox

    with transaction.atomic():
        order.save()
        outbox.publish(connection.cursor(), f"orders/{order.id}", b'{"paid": true}')

Any DB-API cursor whose driver takes ``%s`` placeholders works (psycopg 3,
psycopg2, Django's cursor); with SQLAlchemy, use
``session.connection().exec_driver_sql`` (see :func:`publish`).  Nothing here
imports a driver: the application's own is the only dependency.

Why delivery follows commit order, not id order: a constraint trigger,
deferred to commit time, numbers each row (``seq``) under a
transaction-level advisory lock that is released only once the commit is
visible (see :mod:`tornado_channels.outbox.schema`).  A row inserted in a
savepoint that is rolled back takes its trigger event with it, and a
rolled-back transaction numbers nothing.  docs/outbox.md has the whole
argument, and the exactly-once one.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from ..core.channels import RESERVED, Channel, InvalidChannel, Subtree, Target, validate_name
from .schema import DEFAULT_TABLE, check_table, insert_sql, schema_sql

__all__ = [
    "DEFAULT_TABLE",
    "InvalidChannel",
    "insert_sql",
    "parse_channel",
    "publish",
    "publish_many",
    "rows",
    "schema_sql",
]


class Cursor(Protocol):
    """What :func:`publish` needs of a DB-API cursor."""

    def execute(self, operation: Any, parameters: Any = ..., /) -> Any:
        """Run one statement."""

    def executemany(self, operation: Any, seq_of_parameters: Any, /) -> Any:
        """Run one statement for each set of parameters."""


def parse_channel(text: str) -> Target:
    """The channel (``users/1``) or subtree (``users/``; ``/`` is every channel) a row names.

    Names as they are, never percent-decoded (a row is not a URL).  Raises
    :class:`InvalidChannel` saying what is wrong, as the server's routes do.
    """
    if text == "/":
        return Subtree("")
    subtree = text.endswith("/")
    name = validate_name(text[:-1] if subtree else text)
    if name == RESERVED or name.startswith(RESERVED + "/"):
        raise InvalidChannel(f"'{name}' is reserved for the server's own endpoints (under '_/')")
    return Subtree(name) if subtree else Channel(name)


def rows(items: Iterable[tuple[str, bytes | str]]) -> list[tuple[str, bytes]]:
    """``(channel, data)`` pairs checked and encoded as the INSERT takes them (str as UTF-8)."""
    checked = []
    for channel, data in items:
        parse_channel(channel)
        checked.append((channel, data.encode("utf-8") if isinstance(data, str) else bytes(data)))
    return checked


def publish(cursor: Cursor, channel: str, data: bytes | str, *, table: str = DEFAULT_TABLE) -> None:
    """Insert one message to ``channel`` (or a subtree, ``users/``) through ``cursor``.

    It is published once the cursor's transaction commits, and never if it
    rolls back.  Raises :class:`InvalidChannel` for a name the server would
    refuse, before anything is inserted.  With SQLAlchemy, which does not
    take a DB-API cursor, run the same statement through the session's
    connection::

        session.connection().exec_driver_sql(
            outbox.insert_sql(), (channel, data)
        )
    """
    ((name, payload),) = rows([(channel, data)])
    cursor.execute(insert_sql(table), (name, payload))


def publish_many(
    cursor: Cursor, items: Iterable[tuple[str, bytes | str]], *, table: str = DEFAULT_TABLE
) -> None:
    """Insert several ``(channel, data)`` messages, published in this order once committed."""
    checked = rows(items)
    check_table(table)
    if checked:
        cursor.executemany(insert_sql(table), checked)
