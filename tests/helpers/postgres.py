"""Private PostgreSQL servers for the outbox tests (Debian's postgresql package).

One cluster is made with ``initdb`` per test session and copied for each
server; each runs as the ``postgres`` user (when the tests run as root) on a
free port of 127.0.0.1, with its socket in its own directory, and is stopped
by its PID.  Durability is off (``fsync=off``): these servers hold nothing
worth keeping, and a commit's cost here is the outbox's, not the disk's.
"""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg

from .support import WAIT, free_port

#: Where Debian's postgresql package puts the server's binaries.
BIN = Path("/usr/lib/postgresql/15/bin")


def _owner() -> dict[str, Any]:
    """Popen options running a command as ``postgres`` when we are root (it refuses root)."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


def _own(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(path, entry.pw_uid, entry.pw_gid)


@functools.cache
def template() -> Path:
    """A freshly initialized cluster, made once per session, for servers to copy."""
    assert (BIN / "initdb").exists(), (
        "PostgreSQL is not installed (Debian: apt-get install postgresql)"
    )
    root = Path(tempfile.mkdtemp(prefix="tc-pg-template-"))
    _own(root)
    subprocess.run(
        [
            BIN / "initdb",
            "-D",
            root / "data",
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        ],
        check=True,
        capture_output=True,
        timeout=60,
        **_owner(),
    )
    return root / "data"


def remove_template() -> None:
    """Remove the session's template cluster, if one was made."""
    if template.cache_info().currsize:
        shutil.rmtree(template().parent, ignore_errors=True)
        template.cache_clear()


class PostgresServer:
    """A private ``postgres`` that a test may stop and start again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="tc-pg-"))
        _own(self.dir)
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> PostgresServer:
        if not self.data.exists():
            subprocess.run(["cp", "-a", str(template()), str(self.data)], check=True, timeout=60)
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    BIN / "postgres",
                    "-D", self.data,
                    "-p", str(self.port),
                    "-k", self.dir,
                    "-c", "listen_addresses=127.0.0.1",
                    "-c", "fsync=off",
                    "-c", "full_page_writes=off",
                    "-c", "max_connections=50",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                **_owner(),
            )  # fmt: skip
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text(errors="replace")
            try:
                with psycopg.connect(self.dsn, connect_timeout=1):
                    return self
            except psycopg.OperationalError:
                time.sleep(0.05)
        raise AssertionError(f"PostgreSQL not answering after {WAIT}s\n{self.log.read_text()}")

    def stop(self) -> None:
        """A fast shutdown (SIGINT): clients are disconnected, the data stays."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGINT)
                self.process.wait(WAIT)
            self.process = None

    def remove(self) -> None:
        """Stop it and delete its data."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def connect(self, **options: Any) -> psycopg.Connection[Any]:
        """A new connection to it."""
        return psycopg.connect(self.dsn, **options)

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement in its own transaction; its rows, if any."""
        with self.connect(autocommit=True) as connection:
            cursor = connection.execute(statement.encode() if params is None else statement, params)
            return cursor.fetchall() if cursor.description else []
