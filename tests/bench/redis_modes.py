"""The Redis modes in ``make bench``: standalone, Sentinel and a 3-master cluster.

For each: publishes per second through ``POST /<channel>`` and the batch endpoint, Redis
CPU-seconds per publish on each master (from the redis-server processes), how keys spread
over the masters, and fan-out across two processes.  Plus the cost floor of the publish
script itself, before (tests/bench/publish_v1.lua, as shipped before partitions) and after,
measured inside Redis (``INFO commandstats``) and from its process CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from tests.bench.client import SCENARIO_TIMEOUT, Meter, Publisher, body, proc_cpu, publish_all
from tests.bench.scenarios import BATCH_HEADERS, BATCH_PATH, fanout, tagged
from tests.bench.target import Target
from tests.helpers import RedisServer, ServerProcess
from tests.helpers.redis_modes import Cluster, RedisMode, Sentinel, Standalone, start_mode
from tornado_channels.brokers.redis_history import PUBLISH_SCRIPT
from tornado_channels.core.channels import Channel
from tornado_channels.core.publication import encode_head

#: First segments the publishes spread over (so a cluster's partitions all take part).
SEGMENTS = 64
OLD_SCRIPT = (Path(__file__).parent / "publish_v1.lua").read_bytes()


def masters(mode: RedisMode) -> list[RedisServer]:
    """The redis-server processes that hold data in ``mode``."""
    if isinstance(mode, Cluster):
        return mode.masters()
    if isinstance(mode, Sentinel):
        port = mode.master_port()
        return [mode.master if mode.master.port == port else mode.replica]
    assert isinstance(mode, Standalone)
    return [mode.server]


@contextlib.contextmanager
def deployed(name: str, start: Any) -> Iterator[tuple[RedisMode, Target]]:
    """A Redis deployment of mode ``name`` and two tornado-channels processes on it."""
    mode = start_mode(name)
    servers: list[ServerProcess] = []
    try:
        for _ in range(2):
            servers.append(start(*mode.args()))
        data = masters(mode)
        yield (
            mode,
            Target(
                "ours",
                f"tornado-channels (2 processes, Redis {name})",
                [s.port for s in servers],
                servers[0].port,
                [s.process.pid for s in servers if s.process is not None],
                extra_pids=[m.process.pid for m in data if m.process is not None],
            ),
        )
    finally:
        for server in servers:
            server.terminate()
            server.log.unlink(missing_ok=True)
        mode.stop()


def redis_cpu(target: Target) -> list[float]:
    """CPU seconds so far of each master."""
    return [proc_cpu(pid) for pid in target.extra_pids]


async def idle_rates(target: Target, seconds: float = 2.0) -> list[float]:
    """CPU seconds per second each master spends with nothing published (cron, gossip, probes)."""
    before = redis_cpu(target)
    await asyncio.sleep(seconds)
    return [
        (after - start) / seconds for after, start in zip(redis_cpu(target), before, strict=True)
    ]


def with_redis(
    m: dict[str, Any], before: list[float], target: Target, published: int, idle: list[float]
) -> None:
    """Add the masters' CPU per publish to ``m``, less what they spend idle over the window."""
    spent = [
        max(0.0, after - start - rate * m["wall_s"])
        for after, start, rate in zip(redis_cpu(target), before, idle, strict=True)
    ]
    m["redis_cpu_us_per_publish"] = 1e6 * sum(spent) / max(published, 1)
    m["redis_cpu_us_per_publish_by_master"] = [round(1e6 * s / max(published, 1), 2) for s in spent]


async def posts(target: Target, count: int, connections: int, idle: list[float]) -> dict[str, Any]:
    """``count`` single POSTs over keep-alive connections, channels spread over first segments."""
    tag = time.monotonic_ns()
    plan = [
        [
            (f"/s{(c + i * connections) % SEGMENTS}/{tag}/{i}", i)
            for i in range(count // connections)
        ]
        for c in range(connections)
    ]
    before = redis_cpu(target)
    meter = Meter(target.pids)
    await asyncio.wait_for(publish_all(target, plan), SCENARIO_TIMEOUT)
    m = meter.stop()
    total = sum(len(p) for p in plan)
    m.update(
        sizes=f"{total} POSTs over {connections} keep-alive conns, no subscribers",
        published=total,
        publishes_per_s=total / m["wall_s"],
        publishes_per_server_cpu_s=total / max(m["server_cpu_s"], 1e-9),
    )
    with_redis(m, before, target, total, idle)
    return tagged(target, "publish-only", m)


async def batches(
    target: Target, count: int, size: int, connections: int, idle: list[float]
) -> dict[str, Any]:
    """``count`` batches of ``size`` messages, spread over first segments."""
    tag = time.monotonic_ns()

    def batch(b: int) -> bytes:
        messages = [
            {"channel": f"s{(b * size + i) % SEGMENTS}/{tag}/{i}", "data": body(i).decode()}
            for i in range(size)
        ]
        return json.dumps({"messages": messages}).encode()

    payloads = [[batch(b) for b in range(c, count, connections)] for c in range(connections)]
    publishers = [await Publisher(target.pub_port).open() for _ in range(connections)]
    failures: list[str] = []
    before = redis_cpu(target)
    meter = Meter(target.pids)

    async def run(publisher: Publisher, bodies: list[bytes]) -> None:
        for payload in bodies:
            status, answer = await publisher.request(BATCH_PATH, payload, BATCH_HEADERS)
            if status != 202 and len(failures) < 3:
                failures.append(f"{status} {answer[:200]!r}")

    try:
        await asyncio.wait_for(
            asyncio.gather(*(run(p, b) for p, b in zip(publishers, payloads, strict=True))),
            SCENARIO_TIMEOUT,
        )
    finally:
        for publisher in publishers:
            publisher.close()
    m = meter.stop()
    total = count * size
    m.update(
        sizes=f"{count} batches x {size} msgs over {connections} conns, no subscribers",
        published=total,
        publishes_per_s=total / m["wall_s"],
        publishes_per_server_cpu_s=total / max(m["server_cpu_s"], 1e-9),
    )
    with_redis(m, before, target, total, idle)
    if failures:
        m["error"] = "; ".join(failures)
    return tagged(target, "batch-publish", m)


async def key_spread(mode: RedisMode) -> list[int]:
    """Keys held by each master (history streams, meta, marks)."""
    counts = []
    for master in masters(mode):
        client = Redis(port=master.port)
        try:
            counts.append(int(await client.dbsize()))
        finally:
            await client.aclose()
    return counts


async def mode_suite(name: str, options: argparse.Namespace, start: Any) -> list[dict[str, Any]]:
    """Every scenario on one Redis mode."""
    results = []
    with deployed(name, start) as (mode, target):
        idle = await idle_rates(target)
        results.append(await posts(target, options.posts * 2, 8, idle))
        results.append(await batches(target, options.batches, options.batch_size, 4, idle))
        results[-1]["idle_redis_cpu_ms_per_s"] = [round(rate * 1000, 1) for rate in idle]
        spread = await key_spread(mode)
        results[-1]["keys_by_master"] = spread
        m = await fanout(
            "fanout-1x1000-2proc",
            target,
            channels=1,
            per_channel=options.subscribers,
            messages=options.messages,
            publishers=options.publishers,
        )
        m["redis_cpu_s"] = sum(proc_cpu(p) for p in target.extra_pids)
        results.append(m)
    for result in results:
        result["scenario"] = f"{result['scenario']} [{name}]"
        print(result, flush=True)
    return results


async def script_cost(count: int = 20000, channels: int = 200) -> list[dict[str, Any]]:
    """Redis's own cost per publish of the old and the new script, alone or 10 and 100 per call."""
    server = RedisServer().start()
    results = []
    try:
        client = Redis(port=server.port)
        payload = b"x" * 100
        for label, source in (("v1 (before)", OLD_SCRIPT), ("v2 (partitions)", PUBLISH_SCRIPT)):
            sha = await client.script_load(source)
            for per_call in (1, 10, 100):
                await warm_and_measure(client, sha, label, per_call, count, channels, payload)
                results.append(
                    await warm_and_measure(client, sha, label, per_call, count, channels, payload)
                )
        await client.aclose()
    finally:
        server.stop()
    for result in results:
        print(result, flush=True)
    return results


async def warm_and_measure(
    client: Redis, sha: str, label: str, per_call: int, count: int, channels: int, payload: bytes
) -> dict[str, Any]:
    """Publish ``count`` messages with the script ``sha``, ``per_call`` per call, pipelined."""
    old = label.startswith("v1")
    await client.config_resetstat()
    info = await client.info("server")
    pid = int(info["process_id"])
    cpu0 = proc_cpu(pid)
    sent = 0
    while sent < count:
        pipe = client.pipeline(transaction=False)
        for _ in range(max(1, 100 // per_call)):
            names = [f"u/{(sent + i) % channels}" for i in range(per_call)]
            sent += per_call
            if old:
                keys = [b"o:seq", b"o:epoch", b"o:floors", b"o:active"]
                keys += [b"o:h:c:" + n.encode() for n in names]
                args: list[Any] = ["e1", 100, 300000]
                for n in names:
                    args += [encode_head(Channel(n)), payload, b"o:c:" + n.encode()]
            else:
                keys = [b"n:{0}meta", b"n:{0}marks"] + [b"n:{0}h:c:" + n.encode() for n in names]
                args = ["e1", 101, 301000, 302, 300000, "PUBLISH", per_call, 1]
                for n in names:
                    args += [encode_head(Channel(n)), payload, b"n:{0}c:" + n.encode()]
                args += [per_call, ""]
            pipe.evalsha(sha, len(keys), *keys, *args)
        await pipe.execute()
    spent = proc_cpu(pid) - cpu0
    stats = (await client.info("commandstats"))["cmdstat_evalsha"]
    return {
        "target": "redis",
        "server": "redis-server (standalone)",
        "scenario": f"publish script {label}, {per_call} per call",
        "published": sent,
        "redis_cpu_us_per_publish": 1e6 * spent / sent,
        "in_script_us_per_publish": stats["usec"] / sent,
    }
