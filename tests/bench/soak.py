"""The soak in ``make bench``: memory that stays flat while channels come and go.

Two tornado-channels processes on a private Redis.  For ``--soak`` seconds:

- publishers POST to ``--soak-channels`` distinct per-user channels ``u/<n>/feed``, each
  used once, at the rate that takes (a tenth of them with an ``Idempotency-Key``, a tenth
  followed by a publish to the user's subtree ``u/<n>/``), over both processes;
- churning subscribers open WebSockets on recent users' channels (one in five on their
  subtree ``u/<n>/``), on either process, stay for a moment and leave;
- one steady subscriber on one process hears a channel published to through the other,
  checked for loss, duplicates and order.

``--soak-broker memory`` runs the same load on one process on its embedded broker instead.

Every ``soak / --soak-samples`` seconds it samples each worker's RSS, Redis ``used_memory``,
its key count, and the fields of the partition's bookkeeping (the marks list, the watch set
and its start hash).  The first half is warm-up; the goal is that no figure grows by more
than 5% between the second half's first and last sample.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

from redis.asyncio import Redis

from tests.bench.client import HOST, Publisher, Subscriber, body, proc_rss
from tests.helpers import RedisServer, ServerProcess, free_port
from tornado_channels.brokers.keys import KeyLayout

#: Growth allowed between the second half's first and last sample, in percent.
FLAT = 5.0
#: Churning WebSockets open at any time, and how long each stays (seconds).
CHURNERS = 100
STAY = (0.2, 2.0)
#: Steady channel publishes per second.
STEADY_RATE = 20
#: POST connections for the per-user channels (half on each process).
PUBLISHERS = 4
#: Figures checked for flatness, as they appear in each sample.
FIGURES = ("rss_mib", "rss_max_worker_mib", "redis_used_mib", "redis_keys", "bookkeeping_fields")


@contextlib.contextmanager
def deployment(
    start: Callable[..., ServerProcess], age: float, memory: bool
) -> Iterator[tuple[RedisServer | None, list[ServerProcess]]]:
    """A private Redis and two processes on it (``memory``: one process, embedded broker).

    History is kept for ``age`` seconds.
    """
    redis = None if memory else RedisServer(free_port()).start()
    servers: list[ServerProcess] = []
    flags = ["--history-age", str(age), "--idempotency-ttl", str(age)]
    try:
        if redis is None:
            servers.append(start(*flags))
        else:
            for _ in range(2):
                servers.append(start("--redis-url", redis.url, *flags))
        yield redis, servers
    finally:
        for server in servers:
            server.terminate()
            server.log.unlink(missing_ok=True)
        if redis is not None:
            redis.stop()


class Load:
    """The soak's publishers and churning subscribers, and what they did."""

    def __init__(self, ports: list[int], channels: int, seconds: float) -> None:
        self.ports = ports
        self.channels = channels
        self.seconds = seconds
        self.next_user = 0
        self.published = 0
        self.churned = 0
        self.errors: list[str] = []

    async def users(self, port: int, share: int, of: int, deadline: float) -> None:
        """POST to this connection's share of the users at the rate that spends the soak."""
        publisher = await Publisher(port).open()
        rate = self.channels / self.seconds / of
        started = time.monotonic()
        sent = 0
        try:
            for user in range(share, self.channels, of):
                if time.monotonic() > deadline:
                    return
                # Paced against the start, so a slow moment is caught up.
                delay = started + sent / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                headers = b"Idempotency-Key: soak-%d\r\n" % user if user % 10 == 0 else b""
                status, answer = await publisher.request(f"/u/{user}/feed", b"hi", headers)
                if status != 202:
                    raise RuntimeError(f"POST /u/{user}/feed: {status} {answer[:200]!r}")
                if user % 10 == 5:
                    await publisher.post(f"/u/{user}/", b"below")
                self.next_user = max(self.next_user, user)
                self.published += 1
                sent += 1
        finally:
            publisher.close()

    async def churn(self, slot: int, deadline: float) -> None:
        """Subscribe to a recent user's channel (or subtree), stay a moment, leave; again."""
        loop = asyncio.get_running_loop()
        rng = random.Random(slot)
        while time.monotonic() < deadline:
            port = self.ports[slot % 2]
            user = max(0, self.next_user - rng.randrange(100))
            path = f"/u/{user}/" if rng.random() < 0.2 else f"/u/{user}/feed"
            try:
                _, subscriber = await asyncio.wait_for(
                    loop.create_connection(
                        lambda port=port, path=path: Subscriber(port, path, None, 0), HOST, port
                    ),
                    10,
                )
                try:
                    await asyncio.wait_for(subscriber.ready, 10)
                    await asyncio.sleep(rng.uniform(*STAY))
                finally:
                    subscriber.close()
                self.churned += 1
            except (OSError, asyncio.TimeoutError) as exc:
                self.errors.append(f"churn {path}: {exc!r}")
                await asyncio.sleep(1)


async def steady(port: int, until: float, seq: list[int]) -> None:
    """Publish the steady channel's numbered messages until ``until``."""
    publisher = await Publisher(port).open()
    try:
        started = time.monotonic()
        while time.monotonic() < until:
            await publisher.post("/steady/feed", body(seq[0]))
            seq[0] += 1
            delay = started + seq[0] / STEADY_RATE - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
    finally:
        publisher.close()


async def sample(
    client: Redis | None, layout: KeyLayout, pids: list[int], started: float, load: Load
) -> dict[str, Any]:
    """One point of the curve (without Redis figures on the embedded broker)."""
    rss = [proc_rss(pid) / 2**20 for pid in pids]
    point: dict[str, Any] = {
        "t_s": round(time.monotonic() - started, 1),
        "users": load.published,
        "churned": load.churned,
        "rss_mib": round(sum(rss), 2),
        "rss_max_worker_mib": round(max(rss), 2),
    }
    if client is None:
        return point
    info = await client.info("memory")
    pipe = client.pipeline(transaction=False)
    pipe.dbsize()
    pipe.llen(layout.marks(0))
    pipe.zcard(layout.watch(0))
    pipe.hlen(layout.watch_start(0))
    keys, marks, watch, starts = await pipe.execute()
    return {
        **point,
        "redis_used_mib": round(int(info["used_memory"]) / 2**20, 2),
        "redis_keys": int(keys),
        "bookkeeping_fields": int(marks) + int(watch) + int(starts),
    }


def growth(samples: list[dict[str, Any]]) -> dict[str, float]:
    """Per figure, percent growth from the second half's first sample to the last."""
    first, last = samples[len(samples) // 2], samples[-1]
    return {
        figure: round(100.0 * (last[figure] - first[figure]) / max(first[figure], 1), 2)
        for figure in FIGURES
        if figure in last
    }


async def soak(options: argparse.Namespace, start: Callable[..., ServerProcess]) -> dict[str, Any]:
    """Run the soak; its result, with the sampled curve and the second half's growth."""
    seconds = options.soak
    interval = seconds / options.soak_samples
    memory = options.soak_broker == "memory"
    with deployment(start, options.soak_age, memory) as (redis, servers):
        ports = [server.port for server in servers] * (2 if memory else 1)
        pids = [server.process.pid for server in servers if server.process is not None]
        client = None if redis is None else Redis(host=HOST, port=redis.port)
        layout = KeyLayout(b"tornado_channels:")
        load = Load(ports, options.soak_channels, seconds)
        loop = asyncio.get_running_loop()
        _, listener = await loop.create_connection(
            lambda: Subscriber(ports[1], "/steady/feed", None, STEADY_RATE * int(seconds + 60)),
            HOST,
            ports[1],
        )
        await asyncio.wait_for(listener.ready, 10)
        started = time.monotonic()
        deadline = started + seconds
        seq = [0]
        tasks = [
            asyncio.ensure_future(load.users(ports[n % 2], n, PUBLISHERS, deadline))
            for n in range(PUBLISHERS)
        ]
        tasks += [asyncio.ensure_future(load.churn(n, deadline)) for n in range(CHURNERS)]
        tasks.append(asyncio.ensure_future(steady(ports[0], deadline, seq)))
        samples = []
        try:
            for point in range(1, options.soak_samples + 1):
                await asyncio.sleep(max(0.0, started + point * interval - time.monotonic()))
                samples.append(await sample(client, layout, pids, started, load))
                print("soak", samples[-1], flush=True)
                failed = [task for task in tasks if task.done() and task.exception()]
                if failed:
                    raise failed[0].exception()  # type: ignore[misc]
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
            # The last steady message may still be on its way.
            for _ in range(100):
                if listener.received >= seq[0]:
                    break
                await asyncio.sleep(0.05)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            listener.close()
            if client is not None:
                await client.aclose()
    grew = growth(samples)
    return {
        "server": (
            "tornado-channels (1 process, embedded broker)"
            if memory
            else "tornado-channels (2 processes, Redis)"
        ),
        "target": "ours",
        "scenario": "soak",
        "sizes": (
            f"{load.published:,} users' channels in {seconds:.0f} s, "
            f"{load.churned:,} subscribers churned, history age {options.soak_age:g} s"
        ),
        "wall_s": time.monotonic() - started,
        "lost": listener.lost(seq[0]),
        "duplicated": listener.duplicates,
        "out_of_order": listener.out_of_order,
        "invalid": listener.invalid,
        "steady_published": seq[0],
        "growth_pct": grew,
        "max_growth_pct": max(grew.values()),
        "flat": max(grew.values()) <= FLAT,
        "churn_errors": len(load.errors),
        "samples": samples,
    }


def curve(result: dict[str, Any]) -> str:
    """The samples as a Markdown table, and the second half's growth."""
    samples = result["samples"]
    columns = ["t_s", "users", "churned", *(f for f in FIGURES if f in samples[-1])]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for point in samples:
        lines.append("| " + " | ".join(f"{point[c]:,}" for c in columns) + " |")
    grew = ", ".join(f"{figure} {pct:+.1f}%" for figure, pct in result["growth_pct"].items())
    verdict = "flat" if result["flat"] else f"NOT flat (over {FLAT:g}%)"
    lines.append("")
    lines.append(f"second half, first to last sample: {grew}: {verdict}")
    lines.append(
        f"steady subscriber: {result['steady_published']} published, lost {result['lost']}, "
        f"duplicated {result['duplicated']}, out of order {result['out_of_order']}"
    )
    return "\n".join(lines)
