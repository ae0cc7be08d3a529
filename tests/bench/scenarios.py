"""The bench's scenarios, each against a :class:`~tests.bench.target.Target`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
from collections.abc import Sequence
from typing import Any

from tests.bench.client import (
    SCENARIO_TIMEOUT,
    Meter,
    Publisher,
    Subscriber,
    Tally,
    body,
    integrity,
    open_subscribers,
    proc_rss,
    publish_all,
)
from tests.bench.target import Target


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
    also: Sequence[str] = (),
) -> dict[str, Any]:
    """``channels`` x ``per_channel`` subscribers, ``messages`` per channel, round-robin.

    ``also`` adds subscribers on other paths that hear exactly the same (with one
    channel: a subtree above it, such as the root ``/``).
    """
    tag = f"/bench/{name}-{time.monotonic_ns()}"
    tally = Tally(0)
    paths = [target.sub_path(f"{tag}/{c}") for c in range(channels) for _ in range(per_channel)]
    paths += [target.sub_path(path) for path in also]
    ports = target.sub_ports
    groups = [paths[i :: len(ports)] for i in range(len(ports))]
    subscribers: list[Subscriber] = []
    try:
        for port, group in zip(ports, groups, strict=True):
            subscribers += await open_subscribers(port, group, tally, messages, publishers)
        tally.arm(len(paths) * messages)
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
                f"{publishers} POST conns" + (f", also {', '.join(also)}" if also else ""),
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


async def handshakes(
    target: Target,
    count: int,
    tokens: list[str] | None = None,
    scenario: str = "handshakes",
) -> dict[str, Any]:
    """WebSocket handshakes per server CPU-second, each subscribing to its own channel.

    With ``tokens`` (the server then requires one), handshake ``i`` carries
    ``tokens[i]`` as ``?token=``.
    """
    tag = f"/bench/hs-{time.monotonic_ns()}"
    paths = [target.sub_path(f"{tag}/{i}") for i in range(count)]
    if tokens is not None:
        paths = [f"{path}?token={token}" for path, token in zip(paths, tokens, strict=True)]
    return await handshakes_on(target, paths, scenario)


async def handshakes_on(target: Target, paths: list[str], scenario: str) -> dict[str, Any]:
    """Handshakes per server CPU-second, one to each of ``paths`` (64 at a time)."""
    meter = Meter(target.pids)
    subscribers = await open_subscribers(target.sub_ports[0], paths, None, 0)
    m = meter.stop()
    for s in subscribers:
        s.close()
    await asyncio.sleep(0.5)
    cpu = m["server_cpu_s"]
    m.update(
        {
            "sizes": f"{len(paths)} handshakes, 64 at a time",
            "handshakes_per_server_cpu_s": len(paths) / cpu if cpu else float("inf"),
        }
    )
    return tagged(target, scenario, m)
