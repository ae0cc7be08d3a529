"""``make bench``: WebSocket handshakes per server CPU-second with ``--auth-url``, against tokens.

The backend (tests/helpers/hook_backend.py, allowing everyone) runs in a
process of its own, so its CPU is neither the server's nor the load
client's; it is reported apart.  Uncached: every handshake a channel of its
own, so every one asks the backend.  Cached: every handshake the same
channel and credentials, so one asks and the rest are answered from
``--auth-cache``.  The token figures are run.py's ``handshakes-new-token``
and ``handshakes-known-token``, on the same machine in the same run.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from tests.bench.client import proc_cpu
from tests.bench.scenarios import handshakes_on
from tests.bench.target import Target
from tests.helpers import ServerProcess, free_port, wait_for_port


async def auth_handshakes(
    count: int, start_server: Callable[..., ServerProcess]
) -> list[dict[str, Any]]:
    """Handshakes per server CPU-second through ``--auth-url``: uncached, then cached."""
    port = free_port()
    command = [sys.executable, "-m", "tests.helpers.hook_backend", str(port)]
    backend = subprocess.Popen(command)  # noqa: ASYNC220 - started once, before the load
    results = []
    try:
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}/hook"
        server = start_server("--auth-url", url, "--auth-cache", "60")
        try:
            assert server.process is not None
            target = Target(
                "ours",
                "tornado-channels (1 process, --auth-url)",
                [server.port],
                server.port,
                [server.process.pid],
                extra_pids=[backend.pid],
            )
            tag = f"/bench/auth-{time.monotonic_ns()}"
            uncached = [f"{tag}/{i}" for i in range(count)]
            results.append(await _handshakes(target, uncached, "handshakes-auth-url-uncached"))
            cached = [f"{tag}/same"] * count
            results.append(await _handshakes(target, cached, "handshakes-auth-url-cached"))
        finally:
            server.terminate()
            server.log.unlink(missing_ok=True)
    finally:
        backend.terminate()
        backend.wait(10)
    return results


async def _handshakes(target: Target, paths: list[str], scenario: str) -> dict[str, Any]:
    """As scenarios.handshakes_on, with the backend's CPU reported apart."""
    backend0 = sum(proc_cpu(pid) for pid in target.extra_pids)
    result = await handshakes_on(target, paths, scenario)
    result["backend_cpu_s"] = sum(proc_cpu(pid) for pid in target.extra_pids) - backend0
    print(result, flush=True)
    return result
