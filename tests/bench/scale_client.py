"""One load-client process of the scale curve (tests/bench/scale.py starts several).

It holds up to ~19,000 WebSockets (one process may hold 20,000 descriptors) on uvloop,
with as little per-connection work as we can: a slotted ``asyncio.Protocol``, the
upgrade checked by its status line, frames parsed from the bytes read (one whole small
text frame per read is the usual case), pings answered, and per connection only a
count and the last sequence number. Messages are ``b"<seq> <sent monotonic_ns>"``;
seqs rise strictly on every connection, so a repeat or a step back is counted as bad.

Commands arrive one per line on stdin; each gets one JSON line on stdout:

- ``connect <first> <count> <channels> <ports> <sources> <concurrency>``: connection ``i``
  (``first <= i < first + count``) subscribes to ``/scale/<i % channels>`` on
  ``ports[i % len(ports)]``, from loopback address ``sources[(i // len(ports)) % ...]``
  (ports and sources comma-separated) so that no (source, port) pair runs out of
  ephemeral ports; at most ``concurrency`` handshakes at once.
- ``latency on|off``: keep (or stop keeping) every message's latency.
- ``stats <expected>``: counts, the last arrival's ``monotonic_ns`` (one clock for every
  process on the machine), pings answered, a latency histogram in 10 µs buckets, and
  this process's CPU.
- ``quit``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import resource
import socket
import sys
import time
from array import array
from typing import Any, cast

from tests.bench.client import next_frame

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
#: Linux's IP_BIND_ADDRESS_NO_PORT: bind() takes the source address only, and connect()
#: picks the port for the whole 4-tuple (so ports are not reserved per source address).
IP_BIND_ADDRESS_NO_PORT = 24
CONNECT_TIMEOUT = 600.0
BUCKET_NS = 10_000


class State:
    """What every connection of this process shares."""

    last_ns = 0
    pings = 0
    latencies: array[int] | None = None


class Conn(asyncio.Protocol):
    """One subscriber: a received count and the last seq, nothing per message beyond that."""

    __slots__ = ("bad", "buf", "closed", "last", "ready", "received", "request", "t", "upgraded")

    def __init__(self, request: bytes, ready: asyncio.Future[None]) -> None:
        self.request = request
        self.buf = b""
        self.upgraded = False
        self.ready = ready
        self.received = 0
        self.last = -1
        self.bad = 0
        self.closed = False
        self.t: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = cast(asyncio.Transport, transport)
        self.t.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before 101: {exc}"))

    def data_received(self, data: bytes) -> None:
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if not self.upgraded:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                self.buf = data
                return
            if not data.startswith(b"HTTP/1.1 101 "):
                self.ready.set_exception(ConnectionError(data[: data.find(b"\r\n")].decode()))
                assert self.t is not None
                self.t.abort()
                return
            self.upgraded = True
            self.ready.set_result(None)
            data = data[end + 4 :]
        pos, n = 0, len(data)
        while (frame := next_frame(data, pos)) is not None:
            opcode, start, pos = frame
            if opcode == 1:
                self.message(data, start, pos)
            elif opcode == 9 and self.t is not None:  # ping: a masked pong, zero mask
                State.pings += 1
                self.t.write(bytes((0x8A, 0x80 | (pos - start), 0, 0, 0, 0)) + data[start:pos])
            elif opcode == 8:
                self.closed = True
        if pos < n:
            self.buf = data[pos:]

    def message(self, data: bytes, start: int, end: int) -> None:
        now = time.monotonic_ns()
        space = data.find(b" ", start, end)
        seq = int(data[start:space])
        self.received += 1
        if seq <= self.last:
            self.bad += 1
        self.last = seq
        State.last_ns = now
        if State.latencies is not None:
            State.latencies.append(now - int(data[space + 1 : end]))


async def connect(conns: list[Conn], args: list[str]) -> dict[str, Any]:
    first, count, channels = int(args[0]), int(args[1]), int(args[2])
    ports = [int(p) for p in args[3].split(",")]
    sources = args[4].split(",")
    gate = asyncio.Semaphore(int(args[5]))
    loop = asyncio.get_running_loop()
    failed: list[str] = []
    started = time.monotonic()

    async def one(i: int) -> None:
        port = ports[i % len(ports)]
        source = sources[(i // len(ports)) % len(sources)]
        request = (
            f"GET /scale/{i % channels} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        async with gate:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                sock.bind((source, 0))
                sock.setblocking(False)
                await loop.sock_connect(sock, ("127.0.0.1", port))
                ready: asyncio.Future[None] = loop.create_future()
                _, conn = await loop.create_connection(lambda: Conn(request, ready), sock=sock)
                conns.append(conn)
                await asyncio.wait_for(ready, 60)
            except (OSError, asyncio.TimeoutError) as e:
                sock.close()
                if len(failed) < 5:
                    failed.append(f"{source}->{port}: {e!r}")

    tasks = [one(i) for i in range(first, first + count)]
    await asyncio.wait_for(asyncio.gather(*tasks), CONNECT_TIMEOUT)
    return {
        "connected": sum(c.upgraded for c in conns),
        "failed": count - sum(c.upgraded for c in conns),
        "errors": failed,
        "seconds": time.monotonic() - started,
    }


def stats(conns: list[Conn], expected: int) -> dict[str, Any]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    histogram: dict[int, int] = {}
    if State.latencies is not None:
        histogram = dict(collections.Counter(v // BUCKET_NS for v in State.latencies))
    return {
        "connections": len(conns),
        "received": sum(c.received for c in conns),
        "complete": sum(c.received >= expected for c in conns),
        "lost": sum(max(0, expected - c.received) for c in conns),
        "extra": sum(max(0, c.received - expected) for c in conns),
        "bad": sum(c.bad for c in conns),
        "closed": sum(c.closed for c in conns),
        "last_ns": State.last_ns,
        "pings": State.pings,
        "histogram": histogram,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "maxrss_kib": usage.ru_maxrss,
    }


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    conns: list[Conn] = []
    while line := (await reader.readline()).decode().split():
        command, args = line[0], line[1:]
        answer: dict[str, Any]
        if command == "connect":
            answer = await connect(conns, args)
        elif command == "latency":
            State.latencies = array("q") if args[0] == "on" else None
            answer = {"latency": args[0]}
        elif command == "stats":
            answer = stats(conns, int(args[0]))
        else:
            break
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    for c in conns:
        if c.t is not None:
            c.t.abort()


def main() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve())


if __name__ == "__main__":
    main()
