"""Hostile and broken clients against a real server process: it keeps serving everyone else."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import time
from collections.abc import Callable

from .support import ServerProcess, connect, get, post, receive, run

Start = Callable[..., ServerProcess]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / float(os.sysconf("SC_CLK_TCK"))


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> float:
    """Seconds until the server closes the connection (fails after ``within``)."""
    started = time.monotonic()
    while await asyncio.wait_for(reader.read(65536), within):
        pass
    return time.monotonic() - started


def test_slow_headers_are_cut_off(servers: Start) -> None:
    """A client that never finishes its headers (slowloris) is disconnected after the timeout."""
    server = servers("--idle-timeout", "1")

    async def scenario() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /users/1 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        await writer.drain()
        # Meanwhile everyone else is served.
        assert (await get(server.url + "/_/health")).code == 200
        took = await closed_by_server(reader, within=5)
        writer.close()
        return took

    took = run(scenario())
    assert 0.5 < took < 3.0


def test_slow_bodies_are_cut_off(servers: Start) -> None:
    """A POST whose body trickles in slower than the body timeout is disconnected."""
    server = servers("--body-timeout", "1")

    async def scenario() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"POST /users/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten!!")
        await writer.drain()
        ws = await connect(server.ws_url + "/users/1")
        assert (await post(server.url + "/users/1", b"others publish")).code == 202
        assert await receive(ws) == "others publish"
        ws.close()
        took = await closed_by_server(reader, within=5)
        writer.close()
        return took

    assert run(scenario()) < 3.0


def test_running_out_of_descriptors_neither_spins_nor_floods_the_log(servers: Start) -> None:
    """Out of file descriptors, the server pauses accepting, logs a line per streak, recovers."""

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    server = ServerProcess("--log-level", "info")
    server.popen_options = {"preexec_fn": low_fd_limit}
    server.start()
    assert server.process is not None
    pid = server.process.pid
    clients: list[socket.socket] = []
    try:
        for _ in range(120):
            clients.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        time.sleep(0.5)  # Let it hit the limit.
        before = cpu_seconds(pid)
        time.sleep(2.0)
        busy = cpu_seconds(pid) - before
        assert busy < 0.5, f"the server used {busy:.2f}s of CPU in 2s while out of descriptors"
    finally:
        for client in clients:
            client.close()
    # Descriptors are free again: the server takes connections and answers.
    server.wait_healthy()
    log = server.output()
    server.terminate()
    # One line per streak of pauses (draining the backlog may start a second
    # streak), never one per readiness event: plain Tornado logs thousands here.
    assert 1 <= log.count("cannot accept connections") <= 3, log[-2000:]
    assert len(log.splitlines()) < 12, log[-2000:]
    assert "accepting again" in log
