"""Fan-out as deployed: through nginx to 2 workers on Redis, against one process (``make bench``).

Scenarios 1 (1 x 1000) and 2 (100 x 10) run first against one process on its embedded
broker, then against a :class:`~tests.helpers.deployment.Deployment`: supervisord, 2
workers, nginx in front and a private Redis. Subscribers connect as users do, through
nginx (``ws://<nginx>/ws/<channel>``), and publishes are ``POST /<channel>`` to nginx.
Server CPU is nginx's (master and workers), the workers' and Redis's, from /proc; each
part is reported too, and the load client's CPU apart. Each deployed row carries its
ratios to the one-process row of the same run.

Run alone with ``python -m tests.bench.deployed_fanout``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from typing import Any

from tests.bench.client import proc_cpu
from tests.bench.nginx_publish import _children
from tests.bench.report import table
from tests.bench.scenarios import fanout
from tests.bench.target import Target
from tests.helpers.deployment import Deployment

#: (name, channels, subscribers per channel, messages per channel, POST connections).
Shape = tuple[str, int, int, int, int]
#: More messages than ``make bench``'s scenarios 1 and 2: CPU clocks tick every 10 ms.
SHAPES: tuple[Shape, ...] = (
    ("fanout-1x1000", 1, 1000, 1000, 4),
    ("fanout-100x10", 100, 10, 200, 4),
)


async def _shape(target: Target, shape: Shape) -> dict[str, Any]:
    name, channels, per_channel, messages, publishers = shape
    return await fanout(name, target, channels, per_channel, messages, publishers)


async def _parts(
    target: Target, parts: dict[str, list[int]], baseline: dict[str, dict[str, Any]], suffix: str
) -> list[dict[str, Any]]:
    """Every shape on ``target``, with each part's CPU and the ratios to ``baseline``."""
    results = []
    for shape in SHAPES:
        before = {part: sum(proc_cpu(p) for p in pids) for part, pids in parts.items()}
        m = await _shape(target, shape)
        for part, pids in parts.items():
            m[f"{part}_cpu_s"] = sum(proc_cpu(p) for p in pids) - before[part]
        one = baseline[shape[0]]
        m["scenario"] = shape[0] + suffix
        m["ratio_vs_1proc"] = m["deliveries_per_s"] / one["deliveries_per_s"]
        m["cpu_ratio_vs_1proc"] = (
            m["deliveries_per_server_cpu_s"] / one["deliveries_per_server_cpu_s"]
        )
        results.append(m)
        print(m, flush=True)
    return results


async def deployed_fanout(
    one_process: Callable[[], Any], two_processes: Callable[[], Any] | None = None
) -> list[dict[str, Any]]:
    """Every shape on one process, then on 2 processes on Redis, then through nginx.

    The 2 processes straight on Redis (``two_processes``, when given) show what nginx adds.
    """
    results: list[dict[str, Any]] = []
    baseline: dict[str, dict[str, Any]] = {}
    with one_process() as target:
        for shape in SHAPES:
            m = await _shape(target, shape)
            baseline[shape[0]] = m
            results.append(m)
            print(m, flush=True)
    if two_processes is not None:
        with two_processes() as target:
            parts = {"workers": target.pids, "redis": target.extra_pids}
            target.pids = [*target.pids, *target.extra_pids]
            results += await _parts(target, parts, baseline, "-2proc-direct")
    deployed = Deployment(2)
    try:
        await asyncio.to_thread(deployed.start)  # stopped below even when it fails to start
        parts = {
            "workers": [deployed.pid(deployed.worker_name(n)) for n in range(deployed.workers)],
            "nginx": _children(deployed.pid("nginx")),
            "redis": [deployed.pid("redis")],
        }
        target = Target(
            "ours",
            "tornado-channels (nginx, 2 workers, Redis)",
            [deployed.port],
            deployed.port,
            [pid for pids in parts.values() for pid in pids],
            sub_prefix="/ws",
        )
        results += await _parts(target, parts, baseline, "-nginx")
    finally:
        await asyncio.to_thread(deployed.stop)
    return results


def main() -> None:
    from tests.bench.client import raise_nofile
    from tests.bench.run import ours, ours_redis

    argparse.ArgumentParser(description=__doc__).parse_args()
    raise_nofile()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    started = time.monotonic()
    results = asyncio.run(deployed_fanout(ours, ours_redis))
    print(f"\nruntime {time.monotonic() - started:.1f} s\n")
    print(table(results))


if __name__ == "__main__":
    main()
