"""A whole deployment for tests: supervisord running workers, nginx and Redis.

Built from the project's own deploy/ files on free ports in a private run
directory, so it never meets a `make run` on the same machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from .support import WAIT, free_port, port_blocks, port_is_free, wait_healthy

#: For tests that run nginx (make test installs it when missing).
needs_nginx = pytest.mark.skipif(
    shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx"),
    reason="nginx is not installed (make test installs it)",
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def free_port_range(count: int) -> int:
    """The first of ``count`` consecutive ports that are all free right now."""
    blocks = port_blocks()
    for _ in range(100):
        base = free_port()
        if not any(start <= base and base + count <= stop for start, stop in blocks):
            continue
        if all(port_is_free(port) for port in range(base + 1, base + count)):
            return base
    raise AssertionError("no free port range")


class Deployment:
    """supervisord with ``workers`` workers, nginx in front, and its own Redis."""

    def __init__(self, workers: int = 2, **env: str) -> None:
        self.run_dir = Path(tempfile.mkdtemp(prefix="tc-deploy-"))
        self.port = free_port()
        self.base_port = free_port_range(workers)
        self.redis_port = free_port()
        self.workers = workers
        self.env = {
            **os.environ,
            "TC_RUN_DIR": str(self.run_dir),
            "TC_BIN": str(Path(sys.executable).parent),
            "TC_PORT": str(self.port),
            "TC_WORKERS": str(workers),
            "TC_BASE_PORT": str(self.base_port),
            "TC_PRIVATE_REDIS": "true",
            "TC_REDIS_PORT": str(self.redis_port),
            "TC_MINFDS": "1024",
            "TORNADO_CHANNELS_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "TORNADO_CHANNELS_LOG_LEVEL": "info",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """nginx, the front door."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def worker_url(self, number: int, scheme: str = "http") -> str:
        """Worker ``number`` (0-based), directly."""
        return f"{scheme}://127.0.0.1:{self.base_port + number}"

    def worker_name(self, number: int) -> str:
        """Worker ``number``'s name for supervisorctl."""
        return f"worker:worker-{self.base_port + number}"

    def start(self) -> Deployment:
        config = subprocess.run(
            [sys.executable, str(DEPLOY / "render_nginx.py")],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=WAIT,
        )
        (self.run_dir / "nginx.conf").write_bytes(config.stdout)
        with (self.run_dir / "supervisord.out").open("wb") as out:
            self.process = subprocess.Popen(
                [self.env["TC_BIN"] + "/supervisord", "-n", "-c", str(DEPLOY / "supervisord.conf")],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.wait_healthy(self.url)
        for number in range(self.workers):
            self.wait_healthy(self.worker_url(number))
        return self

    def wait_healthy(self, url: str, timeout: float = 30.0) -> float:
        """Block until ``url`` is healthy; return how long it took."""
        return wait_healthy(url, timeout, self.logs)

    def ctl(self, *args: str) -> str:
        """Run the project's supervisorctl wrapper against this deployment."""
        result = subprocess.run(
            [str(DEPLOY / "supervisorctl"), *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return result.stdout + result.stderr

    def pid(self, name: str) -> int:
        """The PID supervisord reports for program ``name``."""
        return int(self.ctl("pid", name).strip())

    def logs(self) -> str:
        """Every log in the run directory, for failure messages."""
        parts = []
        for path in [*sorted(self.run_dir.glob("*.log")), self.run_dir / "supervisord.out"]:
            if path.exists():
                parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Stop supervisord (and with it every program), then remove the run directory."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(WAIT)
        shutil.rmtree(self.run_dir, ignore_errors=True)
