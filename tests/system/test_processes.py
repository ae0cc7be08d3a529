"""Real ``tornado-channels`` processes: one on its embedded broker, several through one Redis."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tornado_channels.core.frames import CLOSE_GOING_AWAY

from ..helpers import (
    RedisMode,
    RedisServer,
    ServerProcess,
    closed,
    connect,
    get,
    hang_up,
    post,
    receive,
    run,
    silent,
)

Start = Callable[..., ServerProcess]

pytestmark = pytest.mark.processes


def console_script() -> str:
    """The installed ``tornado-channels`` command beside this interpreter."""
    script = Path(sys.executable).with_name("tornado-channels")
    found = str(script) if script.exists() else shutil.which("tornado-channels")
    assert found, "tornado-channels is not installed (pip install .)"
    return found


def test_console_script_serves_a_single_process_without_redis(servers: Start) -> None:
    """The installed command alone is a complete server on its embedded broker."""
    server = servers(command=[console_script()])

    async def scenario() -> None:
        health = await get(server.url + "/_/health")
        assert json.loads(health.body)["broker"] == "memory"
        ws = await connect(server.ws_url + "/users/1")
        response = await post(server.url + "/users/1", b"Hi there!")
        assert response.code == 202
        assert await receive(ws) == "Hi there!"
        await hang_up(ws)

    run(scenario())


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_either_event_loop_serves_and_chats(servers: Start, loop: str) -> None:
    """On asyncio's own loop as on uvloop, a subscriber gets POSTs and its own chat back."""
    server = servers("--event-loop", loop)

    async def scenario() -> None:
        ws = await connect(server.ws_url + "/room")
        assert (await post(server.url + "/room", b"posted")).code == 202
        assert await receive(ws) == "posted"
        await ws.write_message("chat")
        assert await receive(ws) == "chat"
        await hang_up(ws)

    run(scenario())


def test_two_processes_share_one_redis(servers: Start, redis_mode: RedisMode) -> None:
    """Through Redis in every mode, a POST to either process reaches subscribers on both."""
    a = servers(*redis_mode.args())
    b = servers(*redis_mode.args())

    async def scenario() -> None:
        on_a = await connect(a.ws_url + "/users/1")
        on_b = await connect(b.ws_url + "/users/1")
        deep_b = await connect(b.ws_url + "/users/1/inbox")
        for target in (a, b):
            response = await post(target.url + "/users/1", f"via {target.port}")
            assert response.code == 202
            assert await receive(on_a) == f"via {target.port}"
            assert await receive(on_b) == f"via {target.port}"
        await silent(deep_b)
        # Subtree: everything strictly below users, on every process.
        await post(a.url + "/users/", b"below users")
        assert await receive(on_a) == "below users"
        assert await receive(on_b) == "below users"
        assert await receive(deep_b) == "below users"
        # Root: every channel.
        await post(b.url + "/", b"everyone")
        for ws in (on_a, on_b, deep_b):
            assert await receive(ws) == "everyone"
        # Chat across processes: the sender on a, the peer on b, both receive.
        await on_a.write_message("chat from a")
        assert await receive(on_a) == "chat from a"
        assert await receive(on_b) == "chat from a"
        await silent(deep_b)
        # Byte-exact binary across processes.
        await post(a.url + "/users/1", b"\x00\xffbin")
        assert await receive(on_b) == b"\x00\xffbin"
        assert await receive(on_a) == b"\x00\xffbin"
        for ws in (on_a, on_b, deep_b):
            await hang_up(ws)

    run(scenario())


def test_process_reports_unready_until_redis_appears(servers: Start) -> None:
    """Started before its Redis, a process answers 503 and then serves once Redis is up."""
    redis = RedisServer()
    server = servers("--redis-url", redis.url, "--ready-timeout", "0.5", ready=False)

    async def scenario() -> None:
        health = await get(server.url + "/_/health")
        assert health.code == 503
        assert json.loads(health.body)["connected"] is False
        refused = await post(server.url + "/a", b"x")
        assert refused.code == 503
        assert json.loads(refused.body)["error"] == "broker_unavailable"
        redis.start()
        for _ in range(100):
            if (await get(server.url + "/_/health")).code == 200:
                break
            await asyncio.sleep(0.1)
        assert (await post(server.url + "/a", b"x")).code == 202

    try:
        run(scenario())
    finally:
        redis.stop()


def test_sigterm_closes_clients_with_1001_and_exits_cleanly(
    servers: Start, redis_server: RedisServer
) -> None:
    """On SIGTERM a process closes each WebSocket with 1001 and exits with status 0."""
    server = servers("--redis-url", redis_server.url)

    async def scenario() -> None:
        ws = await connect(server.ws_url + "/room")
        server.send_signal(signal.SIGTERM)
        code, reason = await closed(ws)
        assert code == CLOSE_GOING_AWAY
        assert reason
        await hang_up(ws)

    run(scenario())
    assert server.wait_exit() == 0
    assert "stopped" in server.output()


def test_flags_come_from_the_environment(servers: Start) -> None:
    """TORNADO_CHANNELS_MAX_MESSAGE_SIZE sets --max-message-size."""
    server = servers(env={"TORNADO_CHANNELS_MAX_MESSAGE_SIZE": "10"})

    async def scenario() -> None:
        assert (await post(server.url + "/a", b"x" * 10)).code == 202
        assert (await post(server.url + "/a", b"x" * 11)).code == 413

    run(scenario())


def test_port_in_use_is_a_clear_error(servers: Start) -> None:
    """A second process on a taken port exits non-zero and says why."""
    first = servers()
    second = ServerProcess(port=first.port)
    with second.log.open("wb") as out:
        proc = subprocess.run(
            [*second.command, "--port", str(first.port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=30,
        )
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{first.port}" in second.output()
    second.log.unlink()
