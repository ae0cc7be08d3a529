"""Fixtures: private Redis servers and real server processes, always cleaned up."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .support import RedisServer, ServerProcess


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private, running Redis on a free port (never the shared 6379)."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def servers() -> Iterator[Callable[..., ServerProcess]]:
    """Start real ``tornado-channels`` processes; each is terminated afterwards."""
    started: list[ServerProcess] = []

    def start(*args: str, **kwargs: object) -> ServerProcess:
        process = ServerProcess(*args, **kwargs)  # type: ignore[arg-type]
        started.append(process)
        return process.start()

    try:
        yield start
    finally:
        for process in started:
            if process.process is not None and process.process.poll() is None:
                process.terminate()
            process.log.unlink(missing_ok=True)
