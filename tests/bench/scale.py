"""The scale curve (``make bench BENCH_ARGS=--scale 10000,50000,100000``).

For each count: that many WebSocket subscribers over 1,000 channels, on as many worker
processes on one private Redis as the descriptor limit needs (one process may hold
20,000), connected straight to the workers' ports (through nginx each would take two
descriptors there). The load client is several processes of tests/bench/scale_client.py
on uvloop, each holding at most ``PER_CLIENT`` connections, handshaking a bounded number
at a time, from several loopback source addresses.

Measured per count: the workers' RSS (total, and per connection over their RSS before
any connection), Redis's ``used_memory``, the time for one ``POST /`` (every channel) to
reach every subscriber, p50/p99 latency at 1 message a second to each of the 1,000
channels (sent as ``POST /_/publish`` batches of 100 every 100 ms), the CPU of the
workers and Redis at idle over 30 s (every connection pinged at least once, at the
default --ping-interval of 20 s; the pings answered are counted),
and that nothing was lost, repeated or reordered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

from tests.bench.client import Meter, Publisher, proc_cpu, proc_rss, raise_nofile
from tests.helpers import RedisServer, ServerProcess, free_port

CHANNELS = 1000
#: Connections per worker and per client process: below the 20,000-descriptor limit.
PER_WORKER = 16_000
PER_CLIENT = 17_000
#: Handshakes in flight per client process.
CONCURRENCY = 16
#: Loopback source addresses: each (source, worker port) pair stays far below the
#: 28,000 ephemeral ports, and 127.0.0.1's own ports stay free for everyone else.
SOURCES = ",".join(f"127.0.0.{n}" for n in range(2, 8))
LATENCY_SECONDS = 10
BATCH = 100
#: The workers' heartbeat ticks every half --ping-interval (20 s) and pings a connection
#: 20 s after its last ping: 30 s holds at least one ping of every connection.
IDLE_SECONDS = 30.0
#: Bound on one wait for deliveries.
DELIVERY_TIMEOUT = 120.0


def redis_used_memory(port: int) -> int:
    """``INFO memory``'s ``used_memory`` of the Redis on ``port``."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"INFO memory\r\n")
        data = b""
        while b"used_memory:" not in data or not data.endswith(b"\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    for line in data.split(b"\r\n"):
        if line.startswith(b"used_memory:"):
            return int(line.split(b":")[1])
    raise RuntimeError(f"no used_memory in {data[:200]!r}")


class Client:
    """One scale_client process, driven by command lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls) -> Client:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.bench.scale_client",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**26,  # a stats line carries a latency histogram: beyond the 64 KiB default
        )
        return cls(process)

    async def ask(self, line: str, timeout: float = 60.0) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line.encode() + b"\n")
        await self.process.stdin.drain()
        answer = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not answer:
            raise RuntimeError(f"scale client {self.process.pid} exited on {line.split()[0]}")
        result: dict[str, Any] = json.loads(answer)
        return result

    async def stop(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(OSError, RuntimeError):
                assert self.process.stdin is not None
                self.process.stdin.write(b"quit\n")
                self.process.stdin.close()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()


@contextlib.contextmanager
def workers(count: int) -> Iterator[tuple[RedisServer, list[ServerProcess]]]:
    """``count`` workers on one private Redis, pinging at the default interval."""
    redis = RedisServer(free_port()).start()
    servers: list[ServerProcess] = []
    try:
        for _ in range(count):
            server = ServerProcess(
                "--redis-url", redis.url, "--max-connections", "0", "--log-level", "warning"
            )
            server.popen_options["preexec_fn"] = raise_nofile
            servers.append(server.start().wait_healthy())
        yield redis, servers
    except BaseException:
        for s in servers:  # why a point failed: each worker's last words
            print(f"--- worker {s.port}:\n{s.output()[-2000:]}", file=sys.stderr, flush=True)
        raise
    finally:
        for s in servers:
            s.terminate()
            s.log.unlink(missing_ok=True)
        redis.stop()


async def gather_stats(clients: list[Client], expected: int) -> dict[str, Any]:
    """Every client's stats, summed; the latest arrival and merged histogram kept."""
    answers = await asyncio.gather(*(c.ask(f"stats {expected}") for c in clients))
    total: dict[str, Any] = {"histogram": {}}
    for a in answers:
        for key in ("connections", "received", "complete", "lost", "extra", "bad", "closed"):
            total[key] = total.get(key, 0) + a[key]
        total["cpu_s"] = total.get("cpu_s", 0.0) + a["cpu_s"]
        total["pings"] = total.get("pings", 0) + a["pings"]
        total["last_ns"] = max(total.get("last_ns", 0), a["last_ns"])
        for bucket, n in a["histogram"].items():
            total["histogram"][int(bucket)] = total["histogram"].get(int(bucket), 0) + n
    return total


async def wait_complete(clients: list[Client], expected: int, connections: int) -> dict[str, Any]:
    """Poll until every connection has ``expected`` messages (or ``DELIVERY_TIMEOUT``)."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while True:
        stats = await gather_stats(clients, expected)
        if stats["complete"] >= connections or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.2)


def percentile(histogram: dict[int, int], p: float) -> float:
    """The ``p`` quantile in ms of a histogram of 10 µs buckets."""
    total = sum(histogram.values())
    rank = max(1, math.ceil(p * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return (bucket + 1) * 0.01
    return 0.0


async def publish_latency_load(port: int, base_seq: int) -> int:
    """1 msg/s to each channel for ``LATENCY_SECONDS``: a batch of ``BATCH`` every 100 ms."""
    publisher = await Publisher(port).open()
    per_tick = CHANNELS // 10
    start = time.monotonic()
    sent = 0
    try:
        for tick in range(LATENCY_SECONDS * 10):
            delay = start + tick / 10 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            seq = base_seq + tick // 10
            first = (tick % 10) * per_tick
            messages = [
                {"channel": f"scale/{c}", "data": f"{seq} {time.monotonic_ns()}"}
                for c in range(first, first + per_tick)
            ]
            status, answer = await asyncio.wait_for(
                publisher.request(
                    "/_/publish",
                    json.dumps({"messages": messages}).encode(),
                    b"Content-Type: application/json\r\n",
                ),
                30,
            )
            if status != 202:
                raise RuntimeError(f"POST /_/publish: {status} {answer[:200]!r}")
            sent += len(messages)
    finally:
        publisher.close()
    return sent


async def point(subscribers: int) -> dict[str, Any]:
    """Every measure of the curve at ``subscribers`` connections."""
    n_workers = max(2, math.ceil(subscribers / PER_WORKER))
    n_clients = max(1, math.ceil(subscribers / PER_CLIENT))
    result: dict[str, Any] = {
        "target": "ours",
        "server": f"tornado-channels ({n_workers} processes, Redis)",
        "scenario": f"scale-{subscribers}",
        "sizes": f"{subscribers} WebSockets over {CHANNELS} channels, {n_clients} client procs",
    }
    with workers(n_workers) as (redis, servers):
        pids = [s.process.pid for s in servers if s.process is not None]
        assert redis.process is not None
        redis_pid = redis.process.pid
        ports = ",".join(str(s.port) for s in servers)
        rss_before = sum(proc_rss(p) for p in pids)
        redis_before = redis_used_memory(redis.port)
        clients = [await Client.start() for _ in range(n_clients)]
        try:
            share = math.ceil(subscribers / n_clients)
            started = time.monotonic()
            cpu0 = sum(proc_cpu(p) for p in pids)
            answers = await asyncio.gather(
                *(
                    c.ask(
                        f"connect {i * share} {min(share, subscribers - i * share)} "
                        f"{CHANNELS} {ports} {SOURCES} {CONCURRENCY}",
                        timeout=900,
                    )
                    for i, c in enumerate(clients)
                )
            )
            connect_s = time.monotonic() - started
            connected = sum(a["connected"] for a in answers)
            result.update(
                {
                    "connected": connected,
                    "connect_failed": sum(a["failed"] for a in answers),
                    "connect_errors": [e for a in answers for e in a["errors"]][:5],
                    "connect_s": connect_s,
                    "handshakes_per_server_cpu_s": connected
                    / max(sum(proc_cpu(p) for p in pids) - cpu0, 1e-9),
                }
            )
            print(f"scale {subscribers}: {connected} connected in {connect_s:.1f} s", flush=True)
            await asyncio.sleep(2.0)  # the last subscriptions reach Redis
            rss_after = sum(proc_rss(p) for p in pids)
            redis_after = redis_used_memory(redis.port)
            result.update(
                {
                    "rss_total_mib": rss_after / 2**20,
                    "rss_per_connection_kib": (rss_after - rss_before) / max(connected, 1) / 1024,
                    "redis_used_memory_mib": redis_after / 2**20,
                    "redis_memory_growth_mib": (redis_after - redis_before) / 2**20,
                }
            )

            # Idle first, one whole ping interval: pings and pongs only.
            meter = Meter(pids)
            redis_cpu0 = proc_cpu(redis_pid)
            before = await gather_stats(clients, 0)
            await asyncio.sleep(IDLE_SECONDS)
            idle = meter.stop()
            after = await gather_stats(clients, 0)
            result["idle_s"] = idle["wall_s"]
            result["idle_machine_busy_pct"] = idle["machine_busy_pct"]
            result["idle_pings"] = after["pings"] - before["pings"]
            result["idle_cpu_pct"] = 100 * idle["server_cpu_s"] / idle["wall_s"]
            result["idle_redis_cpu_pct"] = 100 * (proc_cpu(redis_pid) - redis_cpu0) / idle["wall_s"]
            result["idle_client_cpu_pct"] = (
                100 * (after["cpu_s"] - before["cpu_s"]) / idle["wall_s"]
            )

            # One broadcast: POST / reaches every channel.
            publisher = await Publisher(servers[0].port).open()
            try:
                meter = Meter([*pids, redis_pid])
                sent_ns = time.monotonic_ns()
                await asyncio.wait_for(publisher.post("/", b"0 %d" % sent_ns), 30)
            finally:
                publisher.close()
            stats = await wait_complete(clients, 1, connected)
            m = meter.stop(stats["last_ns"])
            result.update(
                {
                    "broadcast_ms": (stats["last_ns"] - sent_ns) / 1e6,
                    "broadcast_lost": stats["lost"],
                    "broadcast_machine_busy_pct": m["machine_busy_pct"],
                    "broadcast_deliveries_per_server_cpu_s": stats["received"]
                    / max(m["server_cpu_s"], 1e-9),
                }
            )
            print(f"scale {subscribers}: broadcast {result['broadcast_ms']:.0f} ms", flush=True)

            # Latency: 1 msg/s to each channel, seqs 1..LATENCY_SECONDS on every connection.
            await asyncio.gather(*(c.ask("latency on") for c in clients))
            meter = Meter([*pids, redis_pid])
            client_cpu0 = (await gather_stats(clients, 0))["cpu_s"]
            published = await publish_latency_load(servers[0].port, 1)
            expected = 1 + LATENCY_SECONDS
            stats = await wait_complete(clients, expected, connected)
            m = meter.stop(stats["last_ns"])
            result.update(
                {
                    "published": published,
                    "deliveries": stats["received"] - connected,
                    "p50_ms": percentile(stats["histogram"], 0.50),
                    "p99_ms": percentile(stats["histogram"], 0.99),
                    "max_ms": percentile(stats["histogram"], 1.0),
                    "wall_s": m["wall_s"],
                    "server_cpu_s": m["server_cpu_s"],
                    "client_cpu_s": stats["cpu_s"] - client_cpu0,
                    "machine_busy_pct": m["machine_busy_pct"],
                    "lost": stats["lost"] + (subscribers - connected),
                    "duplicated": stats["extra"],
                    "out_of_order": stats["bad"],
                    "closed": stats["closed"],
                }
            )
            await asyncio.gather(*(c.ask("latency off") for c in clients))
            # A worker whose Redis subscription dropped and came back says so in its log.
            lost_lines = [
                line
                for s in servers
                for line in s.output().splitlines()
                if "Redis connection lost" in line
            ]
            result["redis_link_drops"] = len(lost_lines)
            if lost_lines:
                result["redis_link_drop"] = lost_lines[0]
        finally:
            for c in clients:
                await c.stop()
    print(result, flush=True)
    return result


async def scale_curve(counts: list[int]) -> list[dict[str, Any]]:
    """One point per count, one after the other (each with its own workers and Redis)."""
    return [await point(n) for n in counts]


def main() -> None:
    import argparse

    from tests.bench.report import table

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("counts", help="comma-separated subscriber counts, e.g. 10000,50000")
    options = parser.parse_args()
    raise_nofile()
    results = asyncio.run(scale_curve([int(n) for n in options.counts.split(",")]))
    print(table(results))


if __name__ == "__main__":
    main()
