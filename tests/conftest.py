"""Fixtures: private Redis servers and real server processes, always cleaned up."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest
import tornado.testing

from .helpers import Deployment, RedisMode, RedisServer, ServerProcess, start_mode
from .helpers.support import bind_unused_port

# Tornado's AsyncHTTPTestCase binds port 0, in the kernel's ephemeral range,
# which outgoing connections take at any moment: ours binds below it.
tornado.testing.bind_unused_port = bind_unused_port

#: Every Redis mode the broker supports; scenarios parametrized over them run on each.
REDIS_MODES = ["standalone", "sentinel", "cluster"]


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A private, running Redis on a free port (never the shared 6379)."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def _shared_modes() -> Iterator[dict[str, RedisMode]]:
    """Deployments started once per session, on first use, shared by non-destructive tests."""
    started: dict[str, RedisMode] = {}
    try:
        yield started
    finally:
        for mode in started.values():
            mode.stop()


@pytest.fixture(params=REDIS_MODES)
def redis_mode(request: pytest.FixtureRequest, _shared_modes: dict[str, RedisMode]) -> RedisMode:
    """A running Redis in each mode, shared with other tests: use a fresh ``--redis-prefix``.

    Tests that kill or restart Redis use ``own_redis_mode`` instead.
    """
    name = request.param
    if name not in _shared_modes:
        _shared_modes[name] = start_mode(name)
    mode = _shared_modes[name]
    mode.prefix = f"tc-{secrets.token_hex(4)}:"
    return mode


@pytest.fixture(params=REDIS_MODES)
def own_redis_mode(request: pytest.FixtureRequest) -> Iterator[RedisMode]:
    """A private Redis deployment in each mode, for a test that breaks it."""
    mode = start_mode(request.param)
    try:
        yield mode
    finally:
        mode.stop()


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
