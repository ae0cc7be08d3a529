"""The application side's pure helpers: table names, lock keys, the SQL, the rows inserted."""

from __future__ import annotations

from typing import Any

import pytest

from tornado_channels import outbox
from tornado_channels.core.channels import Channel, InvalidChannel, Subtree
from tornado_channels.outbox.schema import check_table, lock_key, schema_sql


class RecordingCursor:
    """A DB-API cursor that keeps what it was asked to run."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []

    def execute(self, operation: str, parameters: Any = None) -> None:
        self.calls.append(("execute", operation, parameters))

    def executemany(self, operation: str, seq_of_parameters: Any) -> None:
        self.calls.append(("executemany", operation, list(seq_of_parameters)))


def test_publish_is_one_parameterized_insert() -> None:
    """publish() runs one INSERT with %s placeholders, the data as bytes (a str as UTF-8)."""
    cursor = RecordingCursor()
    outbox.publish(cursor, "users/1", "é")
    outbox.publish(cursor, "users/", b"\x00", table="mine")
    assert cursor.calls == [
        (
            "execute",
            "INSERT INTO tornado_channels_outbox (channel, data) VALUES (%s, %s)",
            ("users/1", "é".encode()),
        ),
        ("execute", "INSERT INTO mine (channel, data) VALUES (%s, %s)", ("users/", b"\x00")),
    ]


def test_publish_many_is_one_executemany_in_order_and_nothing_when_empty() -> None:
    """publish_many() inserts every pair in order with executemany, and runs nothing for none."""
    cursor = RecordingCursor()
    outbox.publish_many(cursor, [("a", b"1"), ("b", "2")])
    outbox.publish_many(cursor, [])
    assert cursor.calls == [
        ("executemany", outbox.insert_sql(), [("a", b"1"), ("b", b"2")]),
    ]


@pytest.mark.parametrize("channel", ["", "a//b", "a/../b", "_/health", "_", "x\x00y", "é" * 200])
def test_an_invalid_channel_is_refused_before_anything_is_inserted(channel: str) -> None:
    """A name the server would refuse raises InvalidChannel, and no statement runs."""
    cursor = RecordingCursor()
    with pytest.raises(InvalidChannel):
        outbox.publish_many(cursor, [("ok", b"1"), (channel, b"2")])
    assert cursor.calls == []


def test_channels_are_names_not_urls() -> None:
    """A row names a channel as it is (never percent-decoded), a subtree by its trailing slash."""
    assert outbox.parse_channel("a%2Fb") == Channel("a%2Fb")
    assert outbox.parse_channel("users/") == Subtree("users")
    assert outbox.parse_channel("/") == Subtree("")


@pytest.mark.parametrize("table", ["", "Outbox", "1outbox", "out-box", "a;drop", "x" * 51, "s.t"])
def test_a_table_name_that_is_not_a_plain_identifier_is_refused(table: str) -> None:
    """The table is spliced into SQL: only lower-case identifiers short enough for its suffixes."""
    with pytest.raises(ValueError, match="outbox table"):
        check_table(table)
    with pytest.raises(ValueError, match="outbox table"):
        outbox.publish(RecordingCursor(), "a", b"", table=table)


def test_lock_keys_are_stable_signed_64_bit_and_distinct() -> None:
    """Every process derives the same key per table and purpose; tables and purposes differ."""
    keys = {lock_key(table, purpose) for table in ("a", "b") for purpose in ("commit", "consume")}
    assert len(keys) == 4
    assert lock_key("a", "commit") == lock_key("a", "commit")
    assert all(-(2**63) <= key < 2**63 for key in keys)


def test_the_schema_names_the_table_and_its_companions() -> None:
    """The DDL makes the table, its sequence, rejected and state tables, and a deferred trigger."""
    sql = schema_sql("orders_outbox")
    for needed in (
        "CREATE TABLE IF NOT EXISTS orders_outbox (",
        "CREATE SEQUENCE IF NOT EXISTS orders_outbox_commit_seq",
        "CREATE TABLE IF NOT EXISTS orders_outbox_rejected (",
        "CREATE TABLE IF NOT EXISTS orders_outbox_state (",
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW",
        f"pg_advisory_xact_lock({lock_key('orders_outbox', 'commit')})",
    ):
        assert needed in sql
    assert "tornado_channels_outbox" in schema_sql()
