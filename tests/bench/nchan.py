"""Nchan (Debian's nginx + libnginx-mod-nchan) as a bench target, for ``make bench-nchan``.

nginx runs from its own config (``nchan.conf.template``) in a temporary prefix on a free
port, in the foreground (``daemon off``) as a child of the bench; it is stopped by its own
PID (SIGTERM, then SIGKILL after a timeout), and its workers by theirs if it had to be
killed.  Nothing else is signalled.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import string
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.bench.target import Target
from tests.helpers import free_port

TEMPLATE = Path(__file__).with_name("nchan.conf.template")
MODULE_DIRS = (Path("/usr/lib/nginx/modules"), Path("/usr/share/nginx/modules"))
MODULE = "ngx_nchan_module.so"
#: Bound on starting and on stopping nginx.
WAIT = 10.0
#: nginx 1.22 answers both, depending on whether the channel had subscribers.
PUBLISHED = (201, 202)


def nginx_binary() -> str:
    binary = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else ""
    )
    if not binary:
        raise RuntimeError("nginx is not installed (Debian: apt-get install nginx)")
    return binary


def nchan_module() -> Path:
    for directory in MODULE_DIRS:
        if (directory / MODULE).exists():
            return directory / MODULE
    raise RuntimeError(f"no {MODULE} (Debian: apt-get install libnginx-mod-nchan)")


def render(prefix: Path, port: int, workers: int) -> str:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nofile = 20000 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    return string.Template(TEMPLATE.read_text()).substitute(
        module=nchan_module(),
        prefix=prefix,
        port=port,
        workers=workers,
        nofile=nofile,
        # Every connection of a worker, with some room for the listening socket and files.
        connections=nofile - 100,
        # One listening socket per worker: the kernel spreads connections over them.
        listen_options=" reuseport" if workers > 1 else "",
    )


def children(pid: int) -> list[int]:
    """The PIDs whose parent is ``pid`` (nginx's workers), from /proc."""
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
    return sorted(found)


def answers(port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{port}/_/health"
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def alive_nginx(pid: int) -> bool:
    """Whether ``pid`` still is an nginx process (not a reused PID, not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            head, state = f.read().rsplit(")", 1)
    except FileNotFoundError:
        return False
    return "nginx" in head and state.split()[0] != "Z"


def end(process: subprocess.Popen[bytes], workers: list[int]) -> None:
    """SIGTERM nginx's master, SIGKILL it after ``WAIT``; then any of its workers left."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(WAIT)
    deadline = time.monotonic() + WAIT
    while any(alive_nginx(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    for w in workers:
        if alive_nginx(w):
            with contextlib.suppress(ProcessLookupError):
                os.kill(w, signal.SIGKILL)


@contextlib.contextmanager
def nchan(workers: int = 1) -> Iterator[Target]:
    """Start nginx + Nchan with ``workers`` worker processes, memory store; stopped on exit."""
    prefix = Path(tempfile.mkdtemp(prefix="tc-bench-nchan-"))
    try:
        prefix.chmod(0o755)  # workers run as nobody when the master is root
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(render(prefix, port, workers))
        with running(prefix, conf, port, workers) as target:
            yield target
    finally:
        shutil.rmtree(prefix, ignore_errors=True)


@contextlib.contextmanager
def running(prefix: Path, conf: Path, port: int, workers: int) -> Iterator[Target]:
    """Run nginx on ``conf`` until it answers on ``port``; stop it by its PID on exit."""
    error_log = prefix / "error.log"
    command = [nginx_binary(), "-p", f"{prefix}/", "-c", str(conf), "-e", str(error_log)]
    command += ["-g", "daemon off;"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    pids: list[int] = []
    try:
        deadline = time.monotonic() + WAIT
        while True:
            pids = children(process.pid)
            if len(pids) >= workers and answers(port):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                log = error_log.read_text(errors="replace") if error_log.exists() else ""
                raise RuntimeError(f"nginx did not come up on {port}:\n{log}")
            time.sleep(0.05)
        yield Target(
            name="nchan",
            label=f"Nchan (nginx, {workers} worker{'s' if workers > 1 else ''})",
            sub_ports=[port],
            pub_port=port,
            pids=[process.pid, *pids],
            sub_prefix="/sub",
            pub_prefix="/pub",
            published=PUBLISHED,
        )
    finally:
        end(process, pids)
        if error_log.exists():
            errors = [
                line
                for line in error_log.read_text(errors="replace").splitlines()
                if "[error]" in line or "[crit]" in line or "[alert]" in line or "[emerg]" in line
            ]
            for line in errors[:5]:
                print(f"nginx: {line}", flush=True)


def installed() -> bool:
    try:
        nginx_binary()
        nchan_module()
    except RuntimeError:
        return False
    return True
