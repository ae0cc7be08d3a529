"""Tokens against real processes and a real deployment: refusals, a flood, and clean logs."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable

import jwt
import pytest

from ..helpers import (
    Deployment,
    ServerProcess,
    connect,
    get,
    hang_up,
    needs_nginx,
    post,
    receive,
    run,
)

Start = Callable[..., ServerProcess]
Deploy = Callable[..., Deployment]

pytestmark = pytest.mark.processes

SECRET = "a-secret-for-the-process-tests-32-bytes+"
HANDSHAKE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def minted(*args: str, secret: str = SECRET) -> str:
    """A token from ``tornado-channels token``, as a developer would mint one."""
    result = subprocess.run(
        [sys.executable, "-m", "tornado_channels", "token", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={"TORNADO_CHANNELS_TOKEN_SECRET": secret, "PATH": "/usr/bin:/bin"},
    )
    return result.stdout.strip()


async def handshake_status(port: int, path: str) -> int:
    """The status a raw WebSocket handshake for ``path`` gets."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(HANDSHAKE.format(path=path).encode())
        line = await asyncio.wait_for(reader.readline(), 10)
        return int(line.split()[1])
    finally:
        writer.close()


def test_the_minting_command_makes_tokens_the_server_accepts(servers: Start) -> None:
    """A token from `tornado-channels token` subscribes where it grants, and nowhere else."""
    server = servers(env={"TORNADO_CHANNELS_TOKEN_SECRET": SECRET})
    token = minted(
        "--sub", "u42", "--subscribe", "users/42,users/42/", "--publish", "users/42/", "--ttl", "60"
    )
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert (claims["sub"], claims["subscribe"]) == ("u42", ["users/42", "users/42/"])
    bearer = {"Authorization": f"Bearer {token}"}

    async def scenario() -> None:
        assert await handshake_status(server.port, "/users/42") == 401
        assert await handshake_status(server.port, f"/users/43?token={token}") == 403
        ws = await connect(f"{server.ws_url}/users/42/inbox?token={token}")
        assert (await post(server.url + "/users/42/inbox", b"anonymous")).code == 401
        assert (await post(server.url + "/users/42/inbox", b"for you", headers=bearer)).code == 202
        assert await receive(ws) == "for you"
        await hang_up(ws)

    run(scenario())


def test_tokens_without_exp_are_refused_unless_the_environment_allows_them(
    servers: Start,
) -> None:
    """A no-exp token: 401 by default; TORNADO_CHANNELS_ALLOW_TOKENS_WITHOUT_EXP=1 admits it."""
    token = jwt.encode({"sub": "u1", "subscribe": ["room"]}, SECRET, algorithm="HS256")
    strict = servers(env={"TORNADO_CHANNELS_TOKEN_SECRET": SECRET})
    lenient = servers(
        env={
            "TORNADO_CHANNELS_TOKEN_SECRET": SECRET,
            "TORNADO_CHANNELS_ALLOW_TOKENS_WITHOUT_EXP": "1",
        }
    )

    async def scenario() -> None:
        assert await handshake_status(strict.port, f"/room?token={token}") == 401
        assert await handshake_status(lenient.port, f"/room?token={token}") == 101

    run(scenario())


def test_minting_without_a_secret_says_what_is_missing() -> None:
    """No secret configured: the command exits 2 and names the flag and variable."""
    result = subprocess.run(
        [sys.executable, "-m", "tornado_channels", "token", "--sub", "x"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 2
    assert "TORNADO_CHANNELS_TOKEN_SECRET" in result.stderr


def test_a_flood_of_bad_tokens_harms_no_one_else(servers: Start) -> None:
    """Hundreds of invalid-token handshakes: each refused, the process healthy, others served."""
    server = servers(env={"TORNADO_CHANNELS_TOKEN_SECRET": SECRET})
    good = minted("--subscribe", "room", "--publish", "room", "--ttl", "600")
    forged = minted("--subscribe", "room", secret="not-the-secret-but-just-as-long-!!!!!")

    async def scenario() -> None:
        listener = await connect(f"{server.ws_url}/room?token={good}")
        deadline = time.monotonic() + 60
        for wave in range(10):
            assert time.monotonic() < deadline
            statuses = await asyncio.gather(
                *(handshake_status(server.port, f"/room?token={forged}") for _ in range(50))
            )
            assert set(statuses) == {401}
            published = await post(
                server.url + "/room", f"wave {wave}", headers={"Authorization": f"Bearer {good}"}
            )
            assert published.code == 202
            assert await receive(listener) == f"wave {wave}"
        health = await get(server.url + "/_/health")
        assert health.code == 200
        await hang_up(listener)

    run(scenario(), timeout=90)


@needs_nginx
def test_through_nginx_the_refusals_hold_and_no_log_holds_a_token(deployment: Deploy) -> None:
    """Via nginx: 401/403 as direct, a granted /ws/ subscription works, and no log has a token."""
    deployed = deployment(
        workers=2,
        TORNADO_CHANNELS_TOKEN_SECRET=SECRET,
        TORNADO_CHANNELS_PUBLISH_KEY="backend-key",
        TORNADO_CHANNELS_LOG_LEVEL="debug",
    )
    token = minted("--subscribe", "users/42", "--publish", "users/42", "--ttl", "600")
    other = minted("--subscribe", "users/4", "--ttl", "600")

    async def scenario() -> None:
        assert await handshake_status(deployed.port, "/ws/users/42") == 401
        assert await handshake_status(deployed.port, f"/ws/users/42?token={other}") == 403
        page = await get(f"{deployed.url}/users/42?token={other}")
        assert page.code == 403
        ws = await connect(f"{deployed.ws_url}/ws/users/42?token={token}")
        refused = await post(f"{deployed.url}/users/43?token={token}", b"x")
        assert (refused.code, json.loads(refused.body)["error"]) == (403, "forbidden")
        granted = await post(f"{deployed.url}/users/42?token={token}", b"by token")
        assert granted.code == 202
        assert await receive(ws) == "by token"
        await ws.write_message("chat")
        assert await receive(ws) == "chat"
        await hang_up(ws)

    run(scenario())
    logs = "\n".join(
        path.read_text(errors="replace") for path in sorted(deployed.run_dir.glob("*.log"))
    )
    assert "/users/4" in logs  # the requests were logged (at debug) ...
    for secret in (token, other, token.split(".")[2], other.split(".")[2]):
        assert secret not in logs  # ... and none with its token.
