"""The lifecycle events scenario of ``make bench`` (``--events-url``, docs/events.md).

``events-50k``: 50,000 events (bodies as the server writes them) appended to a
private Redis by the server's own code while the backend refuses them, so they
wait undelivered: the Redis memory each takes.  Then the backend (a Tornado app
in the bench's process, on loopback) takes them, and one server process, the
holder of the lease, delivers them all: events per second from the first batch
received to the last, and the server's CPU per event.  Every event must arrive,
in order, each id once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from tests.bench.client import proc_cpu
from tests.helpers import RedisServer, ServerProcess, free_port, until
from tests.helpers.events_backend import EventsBackend
from tornado_channels.brokers.events import encode
from tornado_channels.brokers.keys import KeyLayout
from tornado_channels.brokers.redis_events import RedisEventLog
from tornado_channels.brokers.settings import BrokerSettings

#: Events in the scenario.
EVENTS = 50_000


async def events_delivery(
    start_server: Callable[..., ServerProcess], count: int = EVENTS
) -> dict[str, Any]:
    """Store ``count`` undelivered events, then time their delivery to a local backend."""
    redis_server = RedisServer(free_port()).start()
    redis = Redis.from_url(redis_server.url)
    backend = EventsBackend()
    backend.status = 503
    backend.start()
    server = None
    try:
        server = start_server("--redis-url", redis_server.url, "--events-url", backend.url)
        assert server.process is not None
        before = int((await redis.info("memory"))["used_memory"])

        async def run(partition: int, call: Callable[[Redis], Any]) -> Any:
            return await call(redis)

        log = RedisEventLog(
            KeyLayout(BrokerSettings().redis_prefix.encode()),
            "bench",
            run,
            max_backlog=count,
            lease=3,
        )
        for n in range(count):
            user = f"u{n % 5000}"
            log.append(0, encode("subscribe", f"room/{n % 1000}", user, "bench-host:1234:0a1b2c3d"))
        await log.flush()
        used = int((await redis.info("memory"))["used_memory"]) - before
        cpu_before = proc_cpu(server.process.pid)
        backend.status = 200
        await until(lambda: len(backend.received) >= count, 120, f"{count} events")
        cpu = proc_cpu(server.process.pid) - cpu_before
        first, last = backend.first_at, backend.last_at
        ids = [event["id"] for event in backend.received]
        result: dict[str, Any] = {
            "target": "ours",
            "server": "tornado-channels (1 process, Redis)",
            "scenario": "events-50k",
            "sizes": f"{count:,} events, batches of 100, backend on loopback",
            "events_per_s": (len(ids) - len(backend.batches[0])) / max(last - first, 1e-9),
            "server_us_per_event": cpu / count * 1e6,
            "redis_bytes_per_event": used / count,
        }
        in_order = ids == sorted(ids, key=_order)
        if len(set(ids)) != count or not in_order:
            result["error"] = f"{len(set(ids))} unique of {count}, in order: {in_order}"
        print(result, flush=True)
        return result
    finally:
        await redis.aclose()
        await backend.stop()
        if server is not None:
            server.terminate()
            server.log.unlink(missing_ok=True)
        redis_server.stop()


def _order(event_id: str) -> tuple[int, int, int]:
    partition, ms, seq = event_id.split("-")
    return int(partition), int(ms), int(seq)


async def main() -> None:  # pragma: no cover - by hand: python -m tests.bench.events
    from tests.bench.run import start_server

    await events_delivery(start_server)


if __name__ == "__main__":  # pragma: no cover
    asyncio.run(main())
