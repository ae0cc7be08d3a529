"""``POST /<channel>`` as deployed: through nginx to 2 workers on Redis (``make bench``).

Four ways a backend may publish, as one sequential client does: over one kept-alive
connection or a new one per POST, each without and with an ``Idempotency-Key`` (nginx
reaches the workers over its kept-alive pool either way, see deploy/nginx.conf.template).
Server CPU is the workers' and nginx's; Redis's is reported apart.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tests.bench.client import HOST, Meter, Publisher, proc_cpu
from tests.helpers.deployment import Deployment

#: POSTs per way of publishing, over this many connections at once (one backend
#: publishing an event at a time: what the deployed path costs without concurrency).
POSTS = 4000
CONNECTIONS = 1


def _children(pid: int) -> list[int]:
    """``pid`` and its child processes (nginx's workers)."""
    found = [pid]
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


async def _one_way(port: int, keyed: bool, keep_alive: bool, pids: list[int]) -> dict[str, Any]:
    tag = f"/bench/nginx-{time.monotonic_ns()}"

    async def connection(c: int) -> None:
        publisher = await Publisher(port).open()
        try:
            for i in range(POSTS // CONNECTIONS):
                headers = b"Idempotency-Key: %s-%d-%d\r\n" % (tag.encode(), c, i) if keyed else b""
                if not keep_alive:
                    headers += b"Connection: close\r\n"
                status, answer = await publisher.request(f"{tag}/{c}", b"x", headers)
                if status != 202:
                    raise RuntimeError(f"{status} {answer[:200]!r}")
        finally:
            publisher.close()

    meter = Meter(pids)
    await asyncio.wait_for(asyncio.gather(*(connection(c) for c in range(CONNECTIONS))), 120)
    m = meter.stop()
    way = ("keep-alive" if keep_alive else "a connection per POST") + (
        ", Idempotency-Key" if keyed else ""
    )
    m.update(
        {
            "target": "ours",
            "server": "tornado-channels (nginx, 2 workers, Redis)",
            "scenario": "publish-nginx"
            + ("-keyed" if keyed else "")
            + ("" if keep_alive else "-close"),
            "sizes": f"{POSTS} POSTs over {CONNECTIONS} conns: {way}",
            "publishes_per_s": POSTS / m["wall_s"],
            "publishes_per_server_cpu_s": POSTS / max(m["server_cpu_s"], 1e-9),
        }
    )
    return m


async def nginx_publish() -> list[dict[str, Any]]:
    """The four ways, one after the other, on one deployment."""
    deployed = await asyncio.to_thread(lambda: Deployment(2).start())
    try:
        pids = [deployed.pid(deployed.worker_name(n)) for n in range(deployed.workers)]
        pids += _children(deployed.pid("nginx"))
        redis = deployed.pid("redis")
        results = []
        for keep_alive in (True, False):
            for keyed in (False, True):
                before = proc_cpu(redis)
                result = await _one_way(deployed.port, keyed, keep_alive, pids)
                result["redis_cpu_us_per_publish"] = (proc_cpu(redis) - before) / POSTS * 1e6
                print(result, flush=True)
                results.append(result)
        return results
    finally:
        await asyncio.to_thread(deployed.stop)


__all__ = ["HOST", "nginx_publish"]
