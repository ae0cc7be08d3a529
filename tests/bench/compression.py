"""Compressed fan-out: permessage-deflate's cost and gain on a realistic 2 KiB JSON message.

The same 1 x N fan-out twice, with subscribers that offer permessage-deflate and with
subscribers that do not: bytes on the wire per delivery, and deliveries per server
CPU-second (the compression is paid once per message, not per subscriber).  Then the
one-time cost of compressing one message, measured in this process on the server's own
code, and RSS per idle connection with compression negotiated, beside one without.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
import zlib
from typing import Any, cast

from tests.bench.client import HOST, KEY, SCENARIO_TIMEOUT, Meter, Publisher
from tests.bench.scenarios import rss, tagged
from tests.bench.target import Target
from tornado_channels.core.deflate import Deflate
from tornado_channels.core.frames import Encoding, MessageFrames

OFFER = "permessage-deflate; client_max_window_bits"
#: One in this many subscribers inflates and checks every message byte for byte.
VERIFY_EVERY = 50


def message(seq: int) -> bytes:
    """A realistic JSON message of about 2 KiB: an order update with its line items."""
    items = [
        {
            "sku": f"SKU-{(seq * 7 + i) % 9973:05d}",
            "name": ["Espresso beans 1kg", "Oat milk 6x1l", "Paper cups 100", "Filter pads"][i % 4],
            "qty": (seq + i) % 5 + 1,
            "unit_price": round(3.5 + ((seq + i) % 17) * 1.25, 2),
            "warehouse": ["north", "south", "east"][i % 3],
            "status": "picked" if i % 2 else "packed",
        }
        for i in range(15)
    ]
    order = {
        "seq": seq,
        "type": "order.updated",
        "order_id": f"ord_{seq:08d}",
        "customer": {"id": f"cus_{seq % 1000:06d}", "name": "Ada Lovelace", "tier": "gold"},
        "items": items,
        "updated_at": f"2024-05-{1 + seq % 28:02d}T12:{seq % 60:02d}:00Z",
    }
    return json.dumps(order).encode()


class Counter:
    """Deliveries and wire bytes shared by a scenario's subscribers."""

    def __init__(self) -> None:
        self.frames = 0
        self.wire_bytes = 0
        self.target = 0
        self.last_ns = 0
        self.done = asyncio.Event()


class DeflateSubscriber(asyncio.Protocol):
    """A raw WebSocket that may offer permessage-deflate; counts frames and bytes received."""

    def __init__(self, path: str, counter: Counter | None, offer: bool, verify: bool) -> None:
        extension = f"Sec-WebSocket-Extensions: {OFFER}\r\n" if offer else ""
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extension}\r\n"
        ).encode()
        self.counter = counter
        self.verify = verify
        self.buf = bytearray()
        self.upgraded = False
        self.extensions = ""
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.received = 0
        self.compressed = 0
        self.invalid = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before 101: {exc}"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1")
            if " 101 " not in head.split("\r\n")[0]:
                self.ready.set_exception(ConnectionError(head.split("\r\n")[0]))
                return
            for line in head.split("\r\n")[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "sec-websocket-extensions":
                    self.extensions = value.strip()
            del buf[: end + 4]
            data = bytes(buf)
            self.upgraded = True
            self.ready.set_result(None)
        if self.counter is not None:
            self.counter.wire_bytes += len(data)
        pos, n = 0, len(buf)
        while n - pos >= 2:
            length, header = buf[pos + 1] & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if n - pos < header + length:
                break
            first = buf[pos]
            start, pos = pos + header, pos + header + length
            if first & 0x0F in (1, 2):
                self.frame(first, buf, start, pos)
            elif first & 0x0F == 8:
                self.closed = True
        if pos:
            del buf[:pos]

    def frame(self, first: int, buf: bytearray, start: int, end: int) -> None:
        self.compressed += bool(first & 0x40)
        if self.verify:
            payload = bytes(buf[start:end])
            if first & 0x40:
                payload = zlib.decompressobj(-15).decompress(payload + b"\x00\x00\xff\xff")
            if payload != message(self.received):
                self.invalid += 1
        self.received += 1
        counter = self.counter
        if counter is not None:
            counter.frames += 1
            counter.last_ns = time.monotonic_ns()
            if counter.frames >= counter.target:
                counter.done.set()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def open_all(
    port: int, paths: list[str], counter: Counter | None, offer: bool
) -> list[DeflateSubscriber]:
    loop = asyncio.get_running_loop()
    subscribers: list[DeflateSubscriber] = []
    gate = asyncio.Semaphore(64)

    async def one(index: int, path: str) -> None:
        async with gate:
            sub = DeflateSubscriber(path, counter, offer, verify=index % VERIFY_EVERY == 0)
            await loop.create_connection(lambda: sub, HOST, port)
            await asyncio.wait_for(sub.ready, SCENARIO_TIMEOUT)
            subscribers.append(sub)

    await asyncio.gather(*(one(i, p) for i, p in enumerate(paths)))
    return subscribers


async def fanout(target: Target, subscribers: int, messages: int, offer: bool) -> dict[str, Any]:
    """1 channel x ``subscribers``, ``messages`` 2 KiB JSON messages published in order."""
    channel = f"/bench/deflate-{offer}-{time.monotonic_ns()}"
    counter = Counter()
    subs = await open_all(target.sub_ports[0], [channel] * subscribers, counter, offer)
    publisher = await Publisher(target.pub_port, target.published).open()
    try:
        counter.target = subscribers * messages
        counter.wire_bytes = 0
        bodies = [message(seq) for seq in range(messages)]
        meter = Meter(target.pids)
        for body in bodies:
            await publisher.post(target.pub_path(channel), body)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(counter.done.wait(), SCENARIO_TIMEOUT)
        m = meter.stop(counter.last_ns or None)
        await asyncio.sleep(0.2)
        deliveries = counter.frames
        m.update(
            {
                "sizes": f"1 ch x {subscribers} subs, {messages} msgs of "
                f"{sum(map(len, bodies)) // messages} B JSON",
                "compression": "on" if offer else "off",
                "negotiated": sum(bool(s.extensions) for s in subs),
                "compressed_frames": sum(s.compressed for s in subs),
                "published": messages,
                "deliveries": deliveries,
                "deliveries_per_s": deliveries / m["wall_s"],
                "deliveries_per_server_cpu_s": deliveries / max(m["server_cpu_s"], 1e-9),
                "wire_bytes_per_delivery": counter.wire_bytes / max(deliveries, 1),
                "lost": subscribers * messages - deliveries,
                "invalid": sum(s.invalid for s in subs),
            }
        )
        name = "fanout-1x1000-deflate" if offer else "fanout-1x1000-2KiB-plain"
        return tagged(target, name, m)
    finally:
        publisher.close()
        for s in subs:
            s.close()
        await asyncio.sleep(0.3)


async def idle(target: Target, count: int, offer: bool) -> dict[str, Any]:
    """RSS per idle connection, with or without permessage-deflate negotiated."""
    gc.collect()
    await asyncio.sleep(0.5)
    before = rss(target.pids)
    tag = f"/bench/idle-deflate-{offer}-{time.monotonic_ns()}"
    paths = [f"{tag}/{i % 100}" for i in range(count)]
    subs = await open_all(target.sub_ports[0], paths, None, offer)
    try:
        await asyncio.sleep(1.0)
        after = rss(target.pids)
        return tagged(
            target,
            "idle-memory-deflate" if offer else "idle-memory-plain",
            {
                "sizes": f"{count} idle WebSockets, compression {'negotiated' if offer else 'off'}",
                "negotiated": sum(bool(s.extensions) for s in subs),
                "rss_per_connection_kib": (after - before) / count / 1024,
            },
        )
    finally:
        for s in subs:
            s.close()
        await asyncio.sleep(0.5)


def compression_cost(rounds: int = 2000) -> dict[str, Any]:
    """The one-time cost of one message: deflating it, and framing it compressed (µs)."""
    body = message(1)
    deflate = Deflate()
    started = time.perf_counter()
    for _ in range(rounds):
        deflate.compress(body)
    compress_us = (time.perf_counter() - started) / rounds * 1e6
    started = time.perf_counter()
    for _ in range(rounds):
        MessageFrames("e:1", body).frame(Encoding.RAW)
    plain_us = (time.perf_counter() - started) / rounds * 1e6
    compressed = deflate.compress(body)
    assert compressed is not None
    return {
        "target": "ours",
        "server": "core/deflate.py (in process)",
        "scenario": "compress-once",
        "sizes": f"{len(body)} B JSON -> {len(compressed)} B",
        "compress_us_per_message": compress_us,
        "frame_us_per_message_plain": plain_us,
        "payload_ratio": len(compressed) / len(body),
    }


async def suite(
    target: Target, subscribers: int, messages: int, idle_count: int
) -> list[dict[str, Any]]:
    """Every compression scenario against ``target``, with the ratios the issue asks for."""
    plain = await fanout(target, subscribers, messages, offer=False)
    print(plain, flush=True)
    deflated = await fanout(target, subscribers, messages, offer=True)
    deflated["wire_ratio_vs_plain"] = (
        deflated["wire_bytes_per_delivery"] / plain["wire_bytes_per_delivery"]
    )
    deflated["cpu_ratio_vs_plain"] = (
        deflated["deliveries_per_server_cpu_s"] / plain["deliveries_per_server_cpu_s"]
    )
    print(deflated, flush=True)
    idle_plain = await idle(target, idle_count, offer=False)
    idle_deflate = await idle(target, idle_count, offer=True)
    print(idle_plain, idle_deflate, flush=True)
    cost = compression_cost()
    print(cost, flush=True)
    return [plain, deflated, idle_plain, idle_deflate, cost]
