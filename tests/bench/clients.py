"""The publishing paths of ``tornado_channels.client``, side by side (part of ``make bench``).

One server process on a private Redis, no subscribers; each path publishes the
same messages, one publisher at a time, and is measured in messages per second
and CPU per message: the client's (this process), the server's, and Redis's.

- ``one-request-per-message``: a new TCP connection per POST, as ``curl`` does
  (the standard library's ``http.client``, the cheapest client there is);
- ``Publisher.publish``: keep-alive, one POST per message;
- ``Publisher.publish_many``: ``POST /_/publish``, ``BATCH`` messages a request;
- ``RedisPublisher.publish`` and ``.publish_many``: the script in Redis, no HTTP.

Run alone with ``python -m tests.bench.clients [--messages N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import time
from collections.abc import Callable
from typing import Any

from tests.bench.client import Meter
from tests.bench.report import table
from tests.helpers import RedisServer, ServerProcess, free_port
from tornado_channels.client import Publisher, RedisPublisher

#: Messages per request of the batch paths.
BATCH = 100
PAYLOAD = "x" * 64


def measured(scenario: str, sizes: str, count: int, meter: Meter) -> dict[str, Any]:
    """One row: rates, and CPU per message of the client and of the server with Redis."""
    m = meter.stop()
    redis_cpu = m.pop("redis_cpu_s", 0.0)
    m.update(
        {
            "target": "ours",
            "server": "tornado-channels (1 process, Redis)",
            "scenario": scenario,
            "sizes": sizes,
            "published": count,
            "publishes_per_s": count / m["wall_s"],
            "client_us_per_msg": 1e6 * m["client_cpu_s"] / count,
            "server_us_per_msg": 1e6 * (m["server_cpu_s"] + redis_cpu) / count,
        }
    )
    print(m, flush=True)
    return m


def one_request_per_message(port: int, count: int) -> None:
    """curl-style: connect, POST, read the answer, close; once per message."""
    for number in range(count):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", f"/bench/once/{number % 10}", PAYLOAD.encode())
        response = conn.getresponse()
        response.read()
        assert response.status == 202, response.status
        conn.close()


def keep_alive(url: str, count: int) -> None:
    with Publisher(url) as publisher:
        for number in range(count):
            publisher.publish(f"bench/kept/{number % 10}", PAYLOAD)


def batched(url: str, count: int) -> None:
    with Publisher(url) as publisher:
        for start in range(0, count, BATCH):
            messages = [(f"bench/many/{n % 10}", PAYLOAD) for n in range(start, start + BATCH)]
            assert len(publisher.publish_many(messages)) == BATCH


async def redis_one(url: str, count: int) -> None:
    async with RedisPublisher(url) as publisher:
        for number in range(count):
            await publisher.publish(f"bench/redis/{number % 10}", PAYLOAD)


async def redis_many(url: str, count: int) -> None:
    async with RedisPublisher(url) as publisher:
        for start in range(0, count, BATCH):
            messages = [(f"bench/redis/{n % 10}", PAYLOAD) for n in range(start, start + BATCH)]
            assert len(await publisher.publish_many(messages)) == BATCH


class _Meter(Meter):
    """Meter, with Redis's CPU kept apart from the server's."""

    def __init__(self, server_pids: list[int], redis_pid: int) -> None:
        super().__init__(server_pids)
        self.redis = Meter([redis_pid])

    def stop(self, end_ns: int | None = None) -> dict[str, Any]:
        result = super().stop(end_ns)
        result["redis_cpu_s"] = self.redis.stop(end_ns)["server_cpu_s"]
        return result


async def client_paths(
    start_server: Callable[..., ServerProcess], messages: int
) -> list[dict[str, Any]]:
    """Every publishing path of the client against one server on a private Redis."""
    redis = RedisServer(free_port()).start()
    server = start_server("--redis-url", redis.url)
    assert server.process is not None
    assert redis.process is not None
    pids, redis_pid = [server.process.pid], redis.process.pid
    results = []
    count = messages - messages % BATCH or BATCH
    # The batched paths are ~30x faster: more messages, for CPU clocks that tick every 10 ms.
    many = count * 10
    plans: list[tuple[str, str, int, Callable[[], Any]]] = [
        (
            "client-one-request-per-message",
            "new connection per POST (http.client)",
            count,
            lambda: asyncio.to_thread(one_request_per_message, server.port, count),
        ),
        (
            "client-Publisher.publish",
            "keep-alive, 1 POST per message",
            count,
            lambda: asyncio.to_thread(keep_alive, server.url, count),
        ),
        (
            "client-Publisher.publish_many",
            f"POST /_/publish, {BATCH} per request",
            many,
            lambda: asyncio.to_thread(batched, server.url, many),
        ),
        (
            "client-RedisPublisher.publish",
            "1 script call per message",
            count,
            lambda: redis_one(redis.url, count),
        ),
        (
            "client-RedisPublisher.publish_many",
            f"{BATCH} per script call",
            many,
            lambda: redis_many(redis.url, many),
        ),
    ]
    try:
        for scenario, sizes, total, plan in plans:
            meter = _Meter(pids, redis_pid)
            await asyncio.wait_for(plan(), 300)
            results.append(measured(scenario, f"{total} msgs, {sizes}", total, meter))
    finally:
        server.terminate()
        server.log.unlink(missing_ok=True)
        redis.stop()
    return results


def main() -> None:
    from tests.bench.run import start_server

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=3000)
    options = parser.parse_args()
    started = time.monotonic()
    results = asyncio.run(client_paths(start_server, options.messages))
    print(f"\nruntime {time.monotonic() - started:.1f} s\n")
    print(table(results))


if __name__ == "__main__":
    main()
