"""``make bench``: fan-out, latency, publish cost and idle memory of one server process.

``make bench-nchan`` (``--nchan``) runs the same scenarios against Nchan (nginx's pub/sub
module, tests/bench/nchan.py) in the same run and prints them side by side.

A raw asyncio WebSocket client (an ``asyncio.Protocol`` parsing frames by hand) and raw
keep-alive HTTP/1.1 POSTs, so that the load client costs less than the server it measures.
Every server and Redis started here is stopped by its PID in ``finally``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

from tests.bench import nchan
from tests.bench.target import Target
from tests.support import RedisServer, ServerProcess, free_port

try:
    import uvloop

    USING_UVLOOP = True
except ImportError:
    uvloop = None
    USING_UVLOOP = False

HOST = "127.0.0.1"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
SERVER_ARGS = ("--ping-interval", "0", "--max-connections", "0", "--log-level", "warning")
#: Bound on any one scenario's waits (connects, deliveries).
SCENARIO_TIMEOUT = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def raise_nofile() -> None:
    """Raise this process's open-file limit to its hard limit (also the server's preexec)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def proc_cpu(pid: int) -> float:
    """CPU seconds (utime + stime) of ``pid`` in seconds, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss(pid: int) -> int:
    """VmRSS of ``pid`` in bytes."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Tally:
    """Deliveries shared by every subscriber of a scenario."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.last_ns = 0
        self.done = asyncio.Event()
        self.latencies: list[int] | None = None

    def arm(self, target: int, latency: bool = False) -> None:
        self.target = target
        self.count = 0
        self.done.clear()
        self.latencies = [] if latency else None


class Subscriber(asyncio.Protocol):
    """One WebSocket: upgrade by hand, then parse unmasked server frames from a bytearray."""

    def __init__(
        self, port: int, path: str, tally: Tally | None, expected: int, streams: int = 1
    ) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.buf = bytearray()
        self.upgraded = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.tally = tally
        self.seen = bytearray(expected)
        #: Last seq seen per publisher stream (seq % streams): each stream is ordered.
        self.last = [-1] * streams
        self.streams = streams
        self.received = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.invalid = 0
        self.closed = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before 101: {exc}"))

    def data_received(self, data: bytes) -> None:
        # Fast path: one whole small text frame in one read, nothing buffered (the usual case).
        if self.upgraded and not self.buf and data[0] == 0x81 and len(data) == 2 + data[1]:
            self.message(data, 2, len(data), time.monotonic_ns())
            return
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buf[: buf.find(b"\r\n")])
            if b" 101 " not in status:
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(status.decode(errors="replace")))
                assert self.transport is not None
                self.transport.abort()
                return
            del buf[: end + 4]
            self.upgraded = True
            self.ready.set_result(None)
        now = time.monotonic_ns()
        pos = 0
        n = len(buf)
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            header = 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                header = 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                header = 10
            if n - pos < header + length:
                break
            opcode = buf[pos] & 0x0F
            start = pos + header
            pos = start + length
            if opcode == 1 or opcode == 2:
                self.message(buf, start, pos, now)
            elif opcode == 9 and self.transport is not None:  # ping: masked pong, zero mask
                self.transport.write(bytes((0x8A, 0x80 | length, 0, 0, 0, 0)) + buf[start:pos])
            elif opcode == 8:
                self.closed = True
        if pos:
            del buf[:pos]

    def message(self, buf: bytes | bytearray, start: int, end: int, now: int) -> None:
        space = buf.find(b" ", start, end)
        try:
            seq = int(buf[start:space])
            sent = int(buf[space + 1 : end])
        except ValueError:
            self.invalid += 1
            return
        self.received += 1
        if 0 <= seq < len(self.seen):
            if self.seen[seq]:
                self.duplicates += 1
            self.seen[seq] = 1
        else:
            self.invalid += 1
        stream = seq % self.streams
        if seq < self.last[stream]:
            self.out_of_order += 1
        else:
            self.last[stream] = seq
        tally = self.tally
        if tally is not None:
            tally.count += 1
            tally.last_ns = now
            if tally.latencies is not None:
                tally.latencies.append(now - sent)
            if tally.count >= tally.target:
                tally.done.set()

    def lost(self, published: int) -> int:
        return published - sum(self.seen[:published])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def open_subscribers(
    port: int,
    paths: list[str],
    tally: Tally | None,
    expected: int,
    streams: int = 1,
    concurrency: int = 64,
) -> list[Subscriber]:
    """Open one subscriber per path (at most ``concurrency`` handshakes at once)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    subscribers: list[Subscriber] = []

    async def one(path: str) -> None:
        async with gate:
            _, protocol = await loop.create_connection(
                lambda: Subscriber(port, path, tally, expected, streams), HOST, port
            )
            subscribers.append(protocol)
            await protocol.ready

    try:
        await asyncio.wait_for(asyncio.gather(*(one(p) for p in paths)), SCENARIO_TIMEOUT)
    except BaseException:
        for s in subscribers:
            s.close()
        raise
    return subscribers


class Publisher:
    """A keep-alive HTTP/1.1 connection: one POST at a time, answer read before the next."""

    def __init__(self, port: int, published: tuple[int, ...] = (202,)) -> None:
        self.port = port
        self.published = published
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> Publisher:
        self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        return self

    async def request(self, path: str, body: bytes, headers: bytes = b"") -> tuple[int, bytes]:
        """POST ``body`` (``headers``: extra CRLF-terminated lines); the status and body."""
        assert self.reader is not None
        assert self.writer is not None
        self.writer.write(
            b"POST %s HTTP/1.1\r\nHost: %s:%d\r\n%sContent-Length: %d\r\n\r\n%s"
            % (path.encode(), HOST.encode(), self.port, headers, len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 "):
            raise RuntimeError(f"POST {path}: {head[:200]!r}")
        status = int(head[9:12])
        length = 0
        close = False
        for line in head.split(b"\r\n"):
            lower = line.lower()
            if lower.startswith(b"content-length:"):
                length = int(line[15:])
            elif lower.startswith(b"connection:") and b"close" in lower:
                close = True
        answer = await self.reader.readexactly(length)
        if close:  # the server ends keep-alive: carry on over a new connection
            self.close()
            await self.open()
        return status, answer

    async def post(self, path: str, body: bytes) -> bytes:
        """POST ``body``; fails unless the status is one of ``published``."""
        status, answer = await self.request(path, body)
        if status not in self.published:
            raise RuntimeError(f"POST {path}: {status} {answer[:200]!r}")
        return answer

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def body(seq: int) -> bytes:
    return b"%d %d" % (seq, time.monotonic_ns())


async def publish_all(target: Target, plan: list[list[tuple[str, int]]]) -> None:
    """Each inner list is one connection's POSTs (channel, seq), sent in order.

    So per-channel order holds per connection.
    """
    publishers = [await Publisher(target.pub_port, target.published).open() for _ in plan]
    try:

        async def run(publisher: Publisher, posts: list[tuple[str, int]]) -> None:
            for channel, seq in posts:
                await publisher.post(target.pub_path(channel), body(seq))

        await asyncio.gather(*(run(p, posts) for p, posts in zip(publishers, plan, strict=True)))
    finally:
        for p in publishers:
            p.close()


def integrity(subscribers: list[Subscriber], published: int) -> dict[str, int]:
    return {
        "lost": sum(s.lost(published) for s in subscribers),
        "duplicated": sum(s.duplicates for s in subscribers),
        "out_of_order": sum(s.out_of_order for s in subscribers),
        "invalid": sum(s.invalid for s in subscribers),
        "closed": sum(s.closed for s in subscribers),
    }


class Meter:
    """Server CPU (all ``pids``), client CPU and wall time over a window."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.server0 = sum(proc_cpu(p) for p in pids)
        self.client0 = self_cpu()
        self.wall0 = time.monotonic_ns()

    def stop(self, end_ns: int | None = None) -> dict[str, Any]:
        end = end_ns if end_ns is not None else time.monotonic_ns()
        return {
            "wall_s": (end - self.wall0) / 1e9,
            "server_cpu_s": sum(proc_cpu(p) for p in self.pids) - self.server0,
            "client_cpu_s": self_cpu() - self.client0,
        }


def tagged(target: Target, scenario: str, m: dict[str, Any]) -> dict[str, Any]:
    """``m`` with the scenario and the target first (the JSON reads better)."""
    return {"target": target.name, "server": target.label, "scenario": scenario, **m}


async def fanout(
    name: str,
    target: Target,
    channels: int,
    per_channel: int,
    messages: int,
    publishers: int,
) -> dict[str, Any]:
    """``channels`` x ``per_channel`` subscribers, ``messages`` per channel, round-robin."""
    tag = f"/bench/{name}-{time.monotonic_ns()}"
    tally = Tally(0)
    paths = [target.sub_path(f"{tag}/{c}") for c in range(channels) for _ in range(per_channel)]
    ports = target.sub_ports
    groups = [paths[i :: len(ports)] for i in range(len(ports))]
    subscribers: list[Subscriber] = []
    try:
        for port, group in zip(ports, groups, strict=True):
            subscribers += await open_subscribers(port, group, tally, messages, publishers)
        tally.arm(channels * per_channel * messages)
        # Message seq of channel c goes over connection (c + seq) % publishers: each
        # connection is sequential, so every stream (seq % publishers) of a channel is
        # ordered, and one channel's messages may still be in flight over several connections.
        plan: list[list[tuple[str, int]]] = [[] for _ in range(publishers)]
        for seq in range(messages):
            for c in range(channels):
                plan[(c + seq) % publishers].append((f"{tag}/{c}", seq))
        meter = Meter(target.pids)
        await asyncio.wait_for(publish_all(target, plan), SCENARIO_TIMEOUT)
        publish_done = time.monotonic_ns()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(tally.done.wait(), SCENARIO_TIMEOUT)
        await asyncio.sleep(0.2)  # late duplicates would show up here
        m = meter.stop(max(tally.last_ns, publish_done))
        m.update(
            {
                "sizes": f"{channels} ch x {per_channel} subs, {messages} msgs/ch, "
                f"{publishers} POST conns",
                "published": channels * messages,
                "deliveries": tally.count,
                "deliveries_per_s": tally.count / m["wall_s"],
                "deliveries_per_server_cpu_s": tally.count / max(m["server_cpu_s"], 1e-9),
                "publishes_per_s": channels * messages / ((publish_done - meter.wall0) / 1e9),
            }
        )
        m.update(integrity(subscribers, messages))
        return tagged(target, name, m)
    finally:
        for s in subscribers:
            s.close()
        await asyncio.sleep(0.3)


async def latency(
    target: Target, subscribers_n: int, rate: float, seconds: float
) -> dict[str, Any]:
    tag = f"/bench/latency-{time.monotonic_ns()}"
    messages = int(rate * seconds)
    tally = Tally(0)
    paths = [target.sub_path(tag)] * subscribers_n
    subscribers = await open_subscribers(target.sub_ports[0], paths, tally, messages)
    publisher = Publisher(target.pub_port, target.published)
    try:
        await publisher.open()
        tally.arm(subscribers_n * messages, latency=True)
        meter = Meter(target.pids)
        start = time.monotonic()
        for seq in range(messages):
            delay = start + seq / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await asyncio.wait_for(
                publisher.post(target.pub_path(tag), body(seq)), SCENARIO_TIMEOUT
            )
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(tally.done.wait(), SCENARIO_TIMEOUT)
        await asyncio.sleep(0.2)
        m = meter.stop()
        lat = sorted(tally.latencies or [0])

        def pct(p: float) -> float:
            return lat[min(len(lat) - 1, int(p * len(lat)))] / 1e6

        m.update(
            {
                "sizes": f"1 ch x {subscribers_n} subs, {rate:g} msg/s x {seconds:g} s",
                "published": messages,
                "deliveries": tally.count,
                "p50_ms": pct(0.50),
                "p99_ms": pct(0.99),
                "max_ms": lat[-1] / 1e6,
            }
        )
        m.update(integrity(subscribers, messages))
        return tagged(target, "latency", m)
    finally:
        publisher.close()
        for s in subscribers:
            s.close()
        await asyncio.sleep(0.3)


async def publish_only(target: Target, posts: int, connections: int) -> dict[str, Any]:
    tag = f"/bench/nobody-{time.monotonic_ns()}"
    plan = [
        [(f"{tag}/{c}/{i}", i) for i in range(posts // connections)] for c in range(connections)
    ]
    meter = Meter(target.pids)
    await asyncio.wait_for(publish_all(target, plan), SCENARIO_TIMEOUT)
    m = meter.stop()
    total = sum(len(p) for p in plan)
    m.update(
        {
            "sizes": f"{total} POSTs over {connections} keep-alive conns, no subscribers",
            "published": total,
            "publishes_per_s": total / m["wall_s"],
            "publishes_per_server_cpu_s": total / max(m["server_cpu_s"], 1e-9),
        }
    )
    return tagged(target, "publish-only", m)


BATCH_PATH = "/_/publish"
BATCH_HEADERS = b"Content-Type: application/json\r\n"


async def batch_publish(
    target: Target, batches: int, size: int, connections: int
) -> dict[str, Any]:
    """``batches`` POSTs of ``size`` messages each to ``/_/publish``, no subscribers.

    The contract: ``{"messages": [{"channel": ..., "data": ...}, ...]}`` answered by 202 and
    ``{"published": <n>, ...}``.  A 404 (the endpoint is not there) skips the scenario.
    """
    tag = f"/bench/batch-{time.monotonic_ns()}"
    sizes = f"{batches} batches x {size} msgs over {connections} keep-alive conns, no subscribers"

    def batch(b: int) -> bytes:
        messages = [
            {"channel": f"{tag}/{i}", "data": body(b * size + i).decode()} for i in range(size)
        ]
        return json.dumps({"messages": messages}).encode()

    payloads = [[batch(b) for b in range(c, batches, connections)] for c in range(connections)]
    publishers = [await Publisher(target.pub_port).open() for _ in range(connections)]
    try:
        status, answer = await asyncio.wait_for(
            publishers[0].request(BATCH_PATH, batch(batches), BATCH_HEADERS), SCENARIO_TIMEOUT
        )
        if status == 404:
            return tagged(target, "batch-publish", {"sizes": sizes, "skipped": "endpoint missing"})
        problems: list[str] = []

        def check(status: int, answer: bytes) -> None:
            try:
                published = json.loads(answer).get("published") if status == 202 else None
            except (ValueError, AttributeError):
                published = None
            if published != size and len(problems) < 3:
                problems.append(f"{status} {answer[:200]!r}")

        check(status, answer)
        if problems:
            return tagged(target, "batch-publish", {"sizes": sizes, "error": problems[0]})
        meter = Meter(target.pids)

        async def run(publisher: Publisher, bodies: list[bytes]) -> None:
            for payload in bodies:
                check(*await publisher.request(BATCH_PATH, payload, BATCH_HEADERS))

        await asyncio.wait_for(
            asyncio.gather(*(run(p, b) for p, b in zip(publishers, payloads, strict=True))),
            SCENARIO_TIMEOUT,
        )
        m = meter.stop()
    finally:
        for p in publishers:
            p.close()
    total = sum(len(b) for b in payloads) * size
    m.update(
        {
            "sizes": sizes,
            "published": total,
            "publishes_per_s": total / m["wall_s"],
            "publishes_per_server_cpu_s": total / max(m["server_cpu_s"], 1e-9),
        }
    )
    if problems:
        m["error"] = "; ".join(problems)
    return tagged(target, "batch-publish", m)


def rss(pids: list[int]) -> int:
    return sum(proc_rss(p) for p in pids)


async def idle(target: Target, count: int) -> dict[str, Any]:
    gc.collect()
    await asyncio.sleep(0.5)
    before = rss(target.pids)
    meter = Meter(target.pids)
    tag = f"/bench/idle-{time.monotonic_ns()}"
    paths = [target.sub_path(f"{tag}/{i % 100}") for i in range(count)]
    subscribers = await open_subscribers(target.sub_ports[0], paths, None, 0)
    try:
        await asyncio.sleep(1.0)
        after = rss(target.pids)
        m = meter.stop()
        m.update(
            {
                "sizes": f"{count} idle WebSockets over 100 channels",
                "rss_before_mib": before / 2**20,
                "rss_after_mib": after / 2**20,
                "rss_per_connection_kib": (after - before) / count / 1024,
                "rss_per_connection_kb": (after - before) / count / 1000,
            }
        )
        return tagged(target, "idle-memory", m)
    finally:
        for s in subscribers:
            s.close()
        await asyncio.sleep(0.5)


def start_server(*args: str) -> ServerProcess:
    server = ServerProcess(*SERVER_ARGS, *args)
    server.popen_options["preexec_fn"] = raise_nofile
    return server.start().wait_healthy()


@contextlib.contextmanager
def ours() -> Iterator[Target]:
    """One tornado-channels process on the embedded broker."""
    server = start_server()
    try:
        assert server.process is not None
        yield Target(
            "ours", "tornado-channels (1 process)", [server.port], server.port, [server.process.pid]
        )
    finally:
        server.terminate()
        server.log.unlink(missing_ok=True)


@contextlib.contextmanager
def ours_redis() -> Iterator[Target]:
    """Two tornado-channels processes on a private Redis; subscribers over both."""
    redis = RedisServer(free_port()).start()
    servers: list[ServerProcess] = []
    try:
        for _ in range(2):
            servers.append(start_server("--redis-url", redis.url))
        yield Target(
            "ours",
            "tornado-channels (2 processes, Redis)",
            [s.port for s in servers],
            servers[0].port,
            [s.process.pid for s in servers if s.process is not None],
            extra_pids=[redis.process.pid] if redis.process is not None else [],
        )
    finally:
        for s in servers:
            s.terminate()
            s.log.unlink(missing_ok=True)
        redis.stop()


def show(result: dict[str, Any]) -> dict[str, Any]:
    print(result, flush=True)
    return result


async def suite(target: Target, options: argparse.Namespace) -> list[dict[str, Any]]:
    """Every one-server scenario against ``target`` (batch-publish: ours only)."""
    results = [
        show(
            await fanout(
                "fanout-1x1000",
                target,
                channels=1,
                per_channel=options.subscribers,
                messages=options.messages,
                publishers=options.publishers,
            )
        ),
        show(
            await fanout(
                "fanout-100x10",
                target,
                channels=100,
                per_channel=10,
                messages=options.messages_per_channel,
                publishers=4,
            )
        ),
        show(await latency(target, options.subscribers, options.rate, options.seconds)),
        show(await publish_only(target, options.posts, 4)),
    ]
    if target.name == "ours":
        results.append(show(await batch_publish(target, options.batches, options.batch_size, 4)))
    results.append(show(await idle(target, options.idle)))
    return results


async def two_process(
    target: Target, options: argparse.Namespace, one: dict[str, Any]
) -> dict[str, Any]:
    """Scenario 1 against a two-process ``target``; ``one`` is its one-process result."""
    m = await fanout(
        "fanout-1x1000-2proc",
        target,
        channels=1,
        per_channel=options.subscribers,
        messages=options.messages,
        publishers=options.publishers,
    )
    if target.extra_pids:
        m["redis_cpu_s"] = sum(proc_cpu(p) for p in target.extra_pids)
    m["ratio_vs_1proc"] = m["deliveries_per_s"] / one["deliveries_per_s"]
    return show(m)


async def main_async(options: argparse.Namespace) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + options.budget
    with ours() as target:
        results += await suite(target, options)
    if options.nchan:
        with nchan.nchan(workers=1) as target:
            results += await suite(target, options)
    if options.no_redis or time.monotonic() > deadline:
        print("skipping the 2-process scenarios", flush=True)
        return results
    with ours_redis() as target:
        results.append(await two_process(target, options, results[0]))
    if options.nchan:
        if time.monotonic() > deadline:
            print("skipping Nchan's 2-worker scenario: past --budget", flush=True)
            return results
        one = next(
            r for r in results if r["target"] == "nchan" and r["scenario"] == "fanout-1x1000"
        )
        with nchan.nchan(workers=2) as target:
            results.append(await two_process(target, options, one))
    return results


COLUMNS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("server", "server", str),
    ("scenario", "scenario", str),
    ("sizes", "sizes", str),
    ("deliveries_per_s", "deliveries/s", lambda v: f"{v:,.0f}"),
    ("deliveries_per_server_cpu_s", "deliveries/server-CPU-s", lambda v: f"{v:,.0f}"),
    ("publishes_per_s", "publishes/s", lambda v: f"{v:,.0f}"),
    ("publishes_per_server_cpu_s", "publishes/server-CPU-s", lambda v: f"{v:,.0f}"),
    ("p50_ms", "p50 ms", lambda v: f"{v:.2f}"),
    ("p99_ms", "p99 ms", lambda v: f"{v:.2f}"),
    ("max_ms", "max ms", lambda v: f"{v:.2f}"),
    ("rss_per_connection_kib", "RSS/conn KiB", lambda v: f"{v:.1f}"),
    ("ratio_vs_1proc", "2proc/1proc", lambda v: f"{v:.2f}"),
    ("lost", "lost", str),
    ("duplicated", "dup", str),
    ("out_of_order", "ooo", str),
    ("wall_s", "wall s", lambda v: f"{v:.2f}"),
    ("server_cpu_s", "server CPU s", lambda v: f"{v:.2f}"),
    ("client_cpu_s", "client CPU s", lambda v: f"{v:.2f}"),
    ("skipped", "skipped", str),
    ("error", "error", str),
]


def table(results: list[dict[str, Any]]) -> str:
    columns = [c for c in COLUMNS if any(c[0] in r for r in results)]
    lines = [
        "| " + " | ".join(title for _, title, _ in columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for r in results:
        cells = [fmt(r[key]) if key in r else "" for key, _, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


#: The comparison: (our scenario, Nchan's scenario, key, metric title, format).
#: Nchan has no batch endpoint: our batch-publish is set against its publish-only.
COMPARED: list[tuple[str, str, str, str, Callable[[float], str]]] = [
    (
        "fanout-1x1000",
        "fanout-1x1000",
        "deliveries_per_server_cpu_s",
        "deliveries/server-CPU-s ↑",
        "{:,.0f}".format,
    ),
    ("fanout-1x1000", "fanout-1x1000", "deliveries_per_s", "deliveries/s ↑", "{:,.0f}".format),
    (
        "fanout-100x10",
        "fanout-100x10",
        "deliveries_per_server_cpu_s",
        "deliveries/server-CPU-s ↑",
        "{:,.0f}".format,
    ),
    ("fanout-100x10", "fanout-100x10", "deliveries_per_s", "deliveries/s ↑", "{:,.0f}".format),
    ("latency", "latency", "p50_ms", "p50 ms ↓", "{:.2f}".format),
    ("latency", "latency", "p99_ms", "p99 ms ↓", "{:.2f}".format),
    (
        "publish-only",
        "publish-only",
        "publishes_per_server_cpu_s",
        "publishes/server-CPU-s ↑",
        "{:,.0f}".format,
    ),
    ("publish-only", "publish-only", "publishes_per_s", "publishes/s ↑", "{:,.0f}".format),
    (
        "batch-publish",
        "publish-only",
        "publishes_per_server_cpu_s",
        "messages/server-CPU-s ↑ (Nchan: single POSTs)",
        "{:,.0f}".format,
    ),
    (
        "idle-memory",
        "idle-memory",
        "rss_per_connection_kib",
        "RSS/idle conn KiB ↓",
        "{:.1f}".format,
    ),
    ("idle-memory", "idle-memory", "rss_per_connection_kb", "RSS/idle conn KB ↓", "{:.1f}".format),
    (
        "fanout-1x1000-2proc",
        "fanout-1x1000-2proc",
        "deliveries_per_server_cpu_s",
        "deliveries/server-CPU-s ↑",
        "{:,.0f}".format,
    ),
    (
        "fanout-1x1000-2proc",
        "fanout-1x1000-2proc",
        "deliveries_per_s",
        "deliveries/s ↑",
        "{:,.0f}".format,
    ),
    (
        "fanout-1x1000-2proc",
        "fanout-1x1000-2proc",
        "ratio_vs_1proc",
        "2proc/1proc deliveries/s ↑",
        "{:.2f}".format,
    ),
]


def metric_cell(r: dict[str, Any] | None, key: str, fmt: Callable[[float], str]) -> str:
    if r is None:
        return "not run"
    if "skipped" in r:
        return f"skipped: {r['skipped']}"
    if "error" in r and key not in r:
        return f"error: {r['error']}"
    return fmt(r[key]) if key in r else ""


def pair(a: dict[str, Any] | None, b: dict[str, Any] | None, key: str) -> str:
    return " / ".join(f"{r[key]:.2f}" if r is not None and key in r else "-" for r in (a, b))


def checks(r: dict[str, Any] | None) -> str:
    if r is None or "lost" not in r:
        return "-"
    return f"{r['lost']}/{r['duplicated']}/{r['out_of_order']}"


def comparison(results: list[dict[str, Any]]) -> str:
    """One row per scenario and key metric: ours, Nchan, ours/Nchan, and the CPU beside."""
    found = {(r["target"], r["scenario"]): r for r in results}
    lines = [
        "| scenario | metric | ours | Nchan | ours/Nchan | server CPU s ours / Nchan "
        "| client CPU s ours / Nchan | wall s ours / Nchan | lost/dup/ooo ours / Nchan |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for mine, theirs, key, title, fmt in COMPARED:
        a, b = found.get(("ours", mine)), found.get(("nchan", theirs))
        if a is None and b is None:
            continue
        scenario = mine if mine == theirs else f"{mine} (Nchan: {theirs})"
        ratio = ""
        if a is not None and b is not None and key in a and b.get(key):
            ratio = f"{a[key] / b[key]:.2f}"
        lines.append(
            f"| {scenario} | {title} | {metric_cell(a, key, fmt)} | {metric_cell(b, key, fmt)} "
            f"| {ratio} | {pair(a, b, 'server_cpu_s')} | {pair(a, b, 'client_cpu_s')} "
            f"| {pair(a, b, 'wall_s')} | {checks(a)} / {checks(b)} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nchan", action="store_true", help="the same scenarios against Nchan")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200, help="scenario 1 messages")
    parser.add_argument("--messages-per-channel", type=int, default=50, help="scenario 2")
    parser.add_argument("--publishers", type=int, default=4, help="POST connections, fan-out")
    parser.add_argument("--rate", type=float, default=10.0, help="latency: messages/s")
    parser.add_argument("--seconds", type=float, default=3.0, help="latency: duration")
    parser.add_argument("--posts", type=int, default=4000, help="publish-only POSTs")
    parser.add_argument("--batches", type=int, default=200, help="batch-publish POSTs")
    parser.add_argument("--batch-size", type=int, default=100, help="batch-publish messages/POST")
    parser.add_argument("--idle", type=int, default=2000, help="idle WebSockets")
    parser.add_argument("--no-redis", action="store_true", help="skip the 2-process scenarios")
    parser.add_argument("--budget", type=float, default=150.0, help="skip 2-process past this (s)")
    options = parser.parse_args()
    if options.nchan and not nchan.installed():
        print(
            "Nchan needs nginx and libnginx-mod-nchan (make bench-nchan installs them)",
            file=sys.stderr,
        )
        return 2
    raise_nofile()
    started = time.monotonic()
    if uvloop is not None:
        uvloop.install()
    results = asyncio.run(main_async(options))
    runtime = time.monotonic() - started
    print()
    print(f"uvloop: {'used' if USING_UVLOOP else 'not installed, asyncio default loop'}; ", end="")
    print(f"CPUs: {os.cpu_count()}; runtime {runtime:.1f} s")
    print(table(results))
    for r in results:
        if r.get("client_cpu_s", 0) > 0.85 * r.get("wall_s", float("inf")):
            share = r["client_cpu_s"] / r["wall_s"]
            print(
                f"note: {r['server']}: {r['scenario']}: the client used {share:.0%} of a core: "
                "client-bound"
            )
    if options.nchan:
        print()
        servers = sorted({r["server"] for r in results}, key=lambda s: (not s.startswith("t"), s))
        print(f"ours vs Nchan ({'; '.join(servers)}); ↑/↓: higher/lower is better")
        print()
        print(comparison(results))
    fd, path = tempfile.mkstemp(prefix="tc-bench-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump({"uvloop": USING_UVLOOP, "runtime_s": runtime, "results": results}, f, indent=2)
    print(f"\nJSON: {path}")
    bad = [
        f"{r['target']} {r['scenario']}"
        for r in results
        if r.get("lost")
        or r.get("duplicated")
        or r.get("out_of_order")
        or r.get("invalid")
        or r.get("error")
    ]
    if bad:
        print(
            f"FAIL: lost, duplicated, out-of-order or invalid messages, or errors, in {bad}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
