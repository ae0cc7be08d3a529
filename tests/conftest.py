"""Fixtures: private Redis servers and real server processes, always cleaned up."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .helpers import Deployment, RedisServer, ServerProcess


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
    """Start real ``tornado-channels`` processes; each is terminated afterwards.

    By default ``start(...)`` returns once the process reports itself healthy.
    """
    started: list[ServerProcess] = []

    def start(*args: str, ready: bool = True, **kwargs: object) -> ServerProcess:
        process = ServerProcess(*args, **kwargs)  # type: ignore[arg-type]
        started.append(process)
        process.start()
        return process.wait_healthy() if ready else process

    try:
        yield start
    finally:
        for process in started:
            if process.process is not None and process.process.poll() is None:
                process.terminate()
            process.log.unlink(missing_ok=True)


@pytest.fixture
def deployment() -> Iterator[Callable[..., Deployment]]:
    """Start whole deployments (supervisord, workers, nginx, Redis); each is stopped afterwards."""
    started: list[Deployment] = []

    def start(workers: int = 2, **env: str) -> Deployment:
        deployed = Deployment(workers, **env)
        started.append(deployed)
        return deployed.start()

    try:
        yield start
    finally:
        for deployed in started:
            deployed.stop()
