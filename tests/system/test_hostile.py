"""Hostile and broken clients against a real server process: it keeps serving everyone else."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import socket
import time
from collections.abc import Callable

from ..helpers import ServerProcess, connect, get, hang_up, post, raw_websocket, receive, run
from ..helpers.support import rss_mib

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
        took = await closed_by_server(reader, within=10)
        writer.close()
        return took

    # Closed (within 10 s, else closed_by_server raises), and not before the timeout.
    assert run(scenario()) > 0.5


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
        await hang_up(ws)
        took = await closed_by_server(reader, within=10)
        writer.close()
        return took

    # Closed within 10 s: closed_by_server raises TimeoutError otherwise.
    run(scenario())


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
    server.log.unlink()
    # One line for the streaks of pauses of these few seconds (draining the
    # backlog starts more), never one per readiness event: plain Tornado logs
    # thousands here.
    assert log.count("cannot accept connections") == 1, log[-2000:]
    assert len(log.splitlines()) < 12, log[-2000:]
    assert "accepting again" in log


def test_slow_consumer_is_closed_and_memory_stays_flat(servers: Start) -> None:
    """A subscriber that never reads is closed past the bound; RSS stays flat; others get all."""
    # A short history, so what the server keeps of the flood (10 of 64 KiB) is small next to it.
    server = servers("--max-buffered-bytes", str(1 << 20), "--history-size", "10")
    assert server.process is not None
    pid = server.process.pid
    chunk = b"x" * 65536
    count = 300  # 19 MiB: far past the kernel's socket buffers and the bound

    async def scenario() -> dict[str, float]:
        _, writer = await raw_websocket(server.port, "/flood")
        # From here the slow client reads nothing at all.
        fast = await connect(server.ws_url + "/flood", max_message_size=1 << 20)
        # A few first, so the baseline has the publish path's code and buffers paged in
        # (modules and buffers are mapped as they are first used).
        for _ in range(4):
            assert (await post(server.url + "/flood", chunk)).code == 202
            assert await receive(fast) == chunk.decode()
        start_rss = rss_mib(pid)
        peak_rss = start_rss
        for _ in range(count):
            assert (await post(server.url + "/flood", chunk)).code == 202
            assert await receive(fast) == chunk.decode()
            peak_rss = max(peak_rss, rss_mib(pid))
        metrics = (await get(server.url + "/_/metrics")).body.decode()
        slow_line = next(
            line
            for line in metrics.splitlines()
            if line.startswith("tornado_channels_slow_consumer_disconnects_total ")
        )
        # Closed with a close frame, then dropped when it does not answer
        # within Tornado's close handshake (5 s): then only the fast one is left.
        left = -1
        for _ in range(200):
            stats = json.loads((await get(server.url + "/_/stats")).body)
            left = stats["channels"].get("flood", 0)
            if left == 1:
                break
            await asyncio.sleep(0.05)
        fast.close()
        writer.close()
        return {
            "start_rss": start_rss,
            "peak_rss": peak_rss,
            "slow_disconnects": float(slow_line.split()[1]),
            "subscribers_left": left,
        }

    figures = run(scenario())
    print(f"\nslow consumer figures: {figures}")
    assert figures["slow_disconnects"] == 1
    assert figures["subscribers_left"] == 1  # only the fast one
    # 19 MiB went out; the server held at most the bound (1 MiB), its history (640 KiB)
    # and its own churn: holding the slow consumer's backlog would be all 19.
    assert figures["peak_rss"] - figures["start_rss"] < 10, figures
