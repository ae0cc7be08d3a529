"""Presence and subtree scenarios of ``make bench``.

- ``fanout-1x1000+root``: the 1 x 1000 fan-out with one more subscriber, on ``/``
  (it hears every message once, like the channel's subscribers): what a subtree
  subscriber costs next to the plain fan-out.
- ``presence-100k``: 100,000 channels' presence, published into a private Redis by
  the server's own code (a process's tally, as ``RedisPresence`` sends it), then
  asked through a running server: the root's first page, a subtree's, one channel's,
  and every page of a subtree with 100,000 names; the Redis memory it took, and the
  time to withdraw it (what a process's exit, or its death, costs Redis).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from tornado.httpclient import AsyncHTTPClient

from tests.bench.scenarios import fanout
from tests.bench.target import Target
from tests.helpers import RedisServer, ServerProcess, free_port
from tornado_channels.brokers.keys import KeyLayout
from tornado_channels.brokers.redis_presence import RedisPresence
from tornado_channels.brokers.settings import BrokerSettings
from tornado_channels.core.presence import PresenceTally

#: Channels in the presence scenario (and users among their subscribers).
CHANNELS = 100_000
USERS = 5_000


async def subtree_fanout(target: Target, options: argparse.Namespace) -> dict[str, Any]:
    """The 1 x 1000 fan-out, with a subscriber of the root too."""
    return await fanout(
        "fanout-1x1000+root",
        target,
        channels=1,
        per_channel=options.subscribers,
        messages=options.messages,
        publishers=options.publishers,
        also=["/"],
    )


async def _timed_get(client: AsyncHTTPClient, url: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = await client.fetch(url, request_timeout=30)
    return (time.perf_counter() - started) * 1000, json.loads(response.body)


async def presence_query(
    start_server: Callable[..., ServerProcess], channels: int = CHANNELS
) -> dict[str, Any]:
    """Publish ``channels`` channels' presence, then time the queries a dashboard makes."""
    redis_server = RedisServer(free_port()).start()
    server = None
    redis = Redis.from_url(redis_server.url)
    client = AsyncHTTPClient()
    try:
        server = start_server("--redis-url", redis_server.url)
        await asyncio.sleep(0.5)
        before = int((await redis.info("memory"))["used_memory"])
        tally = PresenceTally()
        for n in range(channels):
            tally.add(f"feed/{n % 1000}/{n}", f"u{n % USERS}")

        async def run(partition: int, call: Callable[[Redis], Any]) -> Any:
            return await call(redis)

        presence = RedisPresence(
            tally, KeyLayout(BrokerSettings().redis_prefix.encode()), b"bench-node", run, ttl=3600
        )
        started = time.perf_counter()
        await presence.beat()
        beat_s = time.perf_counter() - started
        used = int((await redis.info("memory"))["used_memory"]) - before
        base = server.url + "/_/presence"
        timings: dict[str, list[float]] = {"root": [], "subtree": [], "channel": []}
        for _ in range(20):
            ms, root = await _timed_get(client, base + "/?limit=1000")
            timings["root"].append(ms)
            ms, _ = await _timed_get(client, base + "/feed/7/?limit=100")
            timings["subtree"].append(ms)
            ms, one = await _timed_get(client, base + "/feed/7/7")
            timings["channel"].append(ms)
        assert root["subscribers"] == channels, root["subscribers"]
        assert one["subscribers"] == 1, one
        assert one["users"] == ["u7"], one
        # Every page of feed/ at the largest limit: each name exactly once.
        started = time.perf_counter()
        pages, seen, cursor = 0, 0, None
        while pages < channels:
            query = "/feed/?limit=1000" + (f"&cursor={cursor}" if cursor else "")
            _, answer = await _timed_get(client, base + query)
            pages += 1
            seen += len(answer["channels"])
            cursor = answer["cursor"]
            if cursor is None:
                break
        walk_s = time.perf_counter() - started
        started = time.perf_counter()
        await presence.stop()
        leave_ms = (time.perf_counter() - started) * 1000
        result = {
            "target": "ours",
            "server": "tornado-channels (1 process, Redis)",
            "scenario": "presence-100k",
            "sizes": f"{channels:,} channels, {USERS:,} users, one process's tally",
            "presence_publish_s": beat_s,
            "presence_redis_bytes_per_channel": used / channels,
            "root_page_ms": statistics.median(timings["root"]),
            "subtree_page_ms": statistics.median(timings["subtree"]),
            "channel_ms": statistics.median(timings["channel"]),
            "all_pages_s": walk_s,
            "withdraw_ms": leave_ms,
        }
        if seen != channels:
            result["error"] = f"paging listed {seen} of {channels} channels"
        print(result, flush=True)
        return result
    finally:
        await redis.aclose()
        if server is not None:
            server.terminate()
            server.log.unlink(missing_ok=True)
        redis_server.stop()
