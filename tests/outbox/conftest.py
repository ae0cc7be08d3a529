"""A private PostgreSQL per test module, and a fresh outbox table per test."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from tests.helpers.postgres import PostgresServer, remove_template
from tornado_channels.outbox.schema import schema_sql

_tables = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def _template_removed() -> Iterator[None]:
    """The session's template cluster goes with the session."""
    yield
    remove_template()


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL for the module's tests (each uses tables of its own)."""
    server = PostgresServer().start()
    try:
        yield server
    finally:
        server.remove()


@pytest.fixture
def table(postgres: PostgresServer) -> str:
    """A new outbox table, created as the server creates it."""
    name = f"outbox_{next(_tables)}"
    postgres.sql(schema_sql(name))
    return name
