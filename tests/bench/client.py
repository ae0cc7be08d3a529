"""The bench's load client: raw WebSocket subscribers, keep-alive publishers, and meters.

An ``asyncio.Protocol`` parses server frames by hand, and POSTs are raw
keep-alive HTTP/1.1, so that the load client costs less than the server it
measures.  Server CPU and memory come from /proc.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from typing import Any, cast

from tests.bench.target import Target

HOST = "127.0.0.1"
KEY = "dGhlIHNhbXBsZSBub25jZQ=="
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


def machine_cpu() -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine (every core), from /proc/stat.

    Other work on a shared machine shows as busy time that is neither server nor client.
    """
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / CLK_TCK, sum(fields) / CLK_TCK


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def next_frame(buf: bytes | bytearray, pos: int) -> tuple[int, int, int] | None:
    """The server frame at ``pos`` in ``buf``: (opcode, payload start, payload end), or None.

    None while the frame is incomplete.  Server frames are never masked.
    """
    n = len(buf)
    if n - pos < 2:
        return None
    length = buf[pos + 1] & 0x7F
    header = 2
    if length == 126:
        if n - pos < 4:
            return None
        length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
        header = 4
    elif length == 127:
        if n - pos < 10:
            return None
        length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
        header = 10
    start = pos + header
    if n < start + length:
        return None
    return buf[pos] & 0x0F, start, start + length


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
        while (frame := next_frame(buf, pos)) is not None:
            opcode, start, pos = frame
            if opcode == 1 or opcode == 2:
                self.message(buf, start, pos, now)
            elif opcode == 9 and self.transport is not None:  # ping: masked pong, zero mask
                pong = bytes((0x8A, 0x80 | (pos - start), 0, 0, 0, 0))
                self.transport.write(pong + buf[start:pos])
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
        self.machine0 = machine_cpu()
        self.wall0 = time.monotonic_ns()

    def stop(self, end_ns: int | None = None) -> dict[str, Any]:
        end = end_ns if end_ns is not None else time.monotonic_ns()
        busy, total = machine_cpu()
        return {
            "wall_s": (end - self.wall0) / 1e9,
            "server_cpu_s": sum(proc_cpu(p) for p in self.pids) - self.server0,
            "client_cpu_s": self_cpu() - self.client0,
            # Every process's, ours and anyone else's, over the window: a shared machine.
            "machine_busy_pct": 100
            * (busy - self.machine0[0])
            / max(total - self.machine0[1], 1 / CLK_TCK),
        }
