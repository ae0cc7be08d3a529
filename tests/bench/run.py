"""``make bench``: fan-out, latency, publish cost and idle memory of one server process.

Handshakes per CPU-second without credentials, with tokens and with
``--auth-url`` (cached and not: tests/bench/hooks.py).

Then (with Redis) two processes, the Redis modes, and the publishing paths of
``tornado_channels.client`` side by side (tests/bench/clients.py).

``make bench-nchan`` (``--nchan``) runs the same scenarios against Nchan (nginx's pub/sub
module, tests/bench/nchan.py) in the same run and prints them side by side.

A raw asyncio WebSocket client (an ``asyncio.Protocol`` parsing frames by hand) and raw
keep-alive HTTP/1.1 POSTs, so that the load client costs less than the server it measures.
Every server and Redis started here is stopped by its PID in ``finally``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from tests.bench import (
    clients,
    compression,
    deployed_fanout,
    events,
    hooks,
    nchan,
    nginx_publish,
    presence,
    redis_modes,
    scale,
    soak,
)
from tests.bench.client import proc_cpu, raise_nofile
from tests.bench.outbox import outbox_suite
from tests.bench.report import comparison, table
from tests.bench.scenarios import batch_publish, fanout, handshakes, idle, latency, publish_only
from tests.bench.target import Target
from tests.helpers import RedisServer, ServerProcess, free_port, postgres

try:
    import uvloop

    USING_UVLOOP = True
except ImportError:
    uvloop = None
    USING_UVLOOP = False

#: The deployed shape (nginx in front of workers) is measured only where nginx is.
NGINX_INSTALLED = bool(shutil.which("nginx")) or os.path.exists("/usr/sbin/nginx")

#: The outbox scenarios need Debian's PostgreSQL (make test installs it).
POSTGRES_INSTALLED = (postgres.BIN / "postgres").exists()

SERVER_ARGS = ("--ping-interval", "0", "--max-connections", "0", "--log-level", "warning")
#: The secret of the server that requires tokens (handshakes-token).
TOKEN_SECRET = "a-bench-secret-that-is-at-least-32-bytes"


def start_server(*args: str) -> ServerProcess:
    server = ServerProcess(*SERVER_ARGS, *args)
    server.popen_options["preexec_fn"] = raise_nofile
    return server.start().wait_healthy()


@contextlib.contextmanager
def ours(*args: str, label: str = "tornado-channels (1 process)") -> Iterator[Target]:
    """One tornado-channels process on the embedded broker."""
    server = start_server(*args)
    try:
        assert server.process is not None
        yield Target("ours", label, [server.port], server.port, [server.process.pid])
    finally:
        server.terminate()
        server.log.unlink(missing_ok=True)


async def token_handshakes(options: argparse.Namespace) -> list[dict[str, Any]]:
    """Handshakes per CPU-second: without tokens, with a new HS256 token each, with one reused."""
    import jwt

    def token(user: int) -> str:
        claims = {"sub": f"u{user}", "subscribe": ["/"], "exp": time.time() + 3600}
        return jwt.encode(claims, TOKEN_SECRET, "HS256")

    count = options.handshakes
    results = []
    with ours() as target:
        results.append(show(await handshakes(target, count)))
    label = "tornado-channels (1 process, tokens)"
    with ours("--token-secret", TOKEN_SECRET, label=label) as target:
        fresh = [token(n) for n in range(count)]
        results.append(show(await handshakes(target, count, fresh, "handshakes-new-token")))
        again = [fresh[0]] * count  # a reconnect: the token is known
        results.append(show(await handshakes(target, count, again, "handshakes-known-token")))
    return results


@contextlib.contextmanager
def ours_redis() -> Iterator[Target]:
    """Two tornado-channels processes on a private Redis; subscribers over both."""
    redis = RedisServer(free_port()).start()
    servers: list[ServerProcess] = []
    try:
        for _ in range(2):
            servers.append(start_server("--redis-url", redis.url))
        yield Target(
            "ours",
            "tornado-channels (2 processes, Redis)",
            [s.port for s in servers],
            servers[0].port,
            [s.process.pid for s in servers if s.process is not None],
            extra_pids=[redis.process.pid] if redis.process is not None else [],
        )
    finally:
        for s in servers:
            s.terminate()
            s.log.unlink(missing_ok=True)
        redis.stop()


def show(result: dict[str, Any]) -> dict[str, Any]:
    print(result, flush=True)
    return result


async def suite(target: Target, options: argparse.Namespace) -> list[dict[str, Any]]:
    """Every one-server scenario against ``target`` (batch-publish: ours only)."""
    results = [
        show(
            await fanout(
                "fanout-1x1000",
                target,
                channels=1,
                per_channel=options.subscribers,
                messages=options.messages,
                publishers=options.publishers,
            )
        ),
        show(
            await fanout(
                "fanout-100x10",
                target,
                channels=100,
                per_channel=10,
                messages=options.messages_per_channel,
                publishers=4,
            )
        ),
        show(await latency(target, options.subscribers, options.rate, options.seconds)),
        show(await publish_only(target, options.posts, 4)),
    ]
    if target.name == "ours":
        results.append(show(await batch_publish(target, options.batches, options.batch_size, 4)))
        results.append(show(await presence.subtree_fanout(target, options)))
    results.append(show(await idle(target, options.idle)))
    return results


async def two_process(
    target: Target, options: argparse.Namespace, one: dict[str, Any]
) -> dict[str, Any]:
    """Scenario 1 against a two-process ``target``; ``one`` is its one-process result."""
    redis_before = sum(proc_cpu(p) for p in target.extra_pids)
    m = await fanout(
        "fanout-1x1000-2proc",
        target,
        channels=1,
        per_channel=options.subscribers,
        messages=options.messages,
        publishers=options.publishers,
    )
    if target.extra_pids:
        m["redis_cpu_s"] = sum(proc_cpu(p) for p in target.extra_pids) - redis_before
    m["ratio_vs_1proc"] = m["deliveries_per_s"] / one["deliveries_per_s"]
    return show(m)


async def main_async(options: argparse.Namespace) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    if options.soak_only:
        return [await soak.soak(options, start_server)]
    if not options.scale_only:
        results += await main_scenarios(options)
    if options.scale:
        results += await scale.scale_curve([int(n) for n in options.scale.split(",")])
    if options.soak and not options.no_redis and not options.scale_only:
        results.append(await soak.soak(options, start_server))
    return results


async def main_scenarios(options: argparse.Namespace) -> list[dict[str, Any]]:
    """Everything but the soak."""
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + options.budget
    with ours() as target:
        results += await suite(target, options)
        if options.compression:
            results += await compression.suite(
                target, options.subscribers, options.messages, options.idle
            )
    results += await token_handshakes(options)
    results += await hooks.auth_handshakes(options.handshakes, start_server)
    if options.nchan:
        with nchan.nchan(workers=1) as target:
            results += await suite(target, options)
    if options.no_redis or time.monotonic() > deadline:
        print("skipping the 2-process scenarios", flush=True)
        return results
    with ours_redis() as target:
        results.append(await two_process(target, options, results[0]))
    results.append(await presence.presence_query(start_server))
    results.append(await events.events_delivery(start_server))
    if NGINX_INSTALLED:
        results += await nginx_publish.nginx_publish()
        results += await deployed_fanout.deployed_fanout(ours, ours_redis)
    else:
        print("skipping POSTs and fan-out through nginx: nginx is not installed", flush=True)
    results += await clients.client_paths(start_server, options.client_messages)
    if options.outbox_rows and POSTGRES_INSTALLED:
        results += await outbox_suite(start_server, options.outbox_rows)
    elif options.outbox_rows:
        print("skipping the outbox: PostgreSQL is not installed (apt-get install postgresql)")
    if options.redis_modes:
        results += await redis_modes.script_cost()
        for mode in options.redis_modes.split(","):
            if time.monotonic() > deadline + 120:
                print(f"skipping Redis {mode}: past --budget", flush=True)
                continue
            results += await redis_modes.mode_suite(mode, options, start_server)
    if options.nchan:
        if time.monotonic() > deadline:
            print("skipping Nchan's 2-worker scenario: past --budget", flush=True)
            return results
        one = next(
            r for r in results if r["target"] == "nchan" and r["scenario"] == "fanout-1x1000"
        )
        with nchan.nchan(workers=2) as target:
            results.append(await two_process(target, options, one))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nchan", action="store_true", help="the same scenarios against Nchan")
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200, help="scenario 1 messages")
    parser.add_argument("--messages-per-channel", type=int, default=50, help="scenario 2")
    parser.add_argument("--publishers", type=int, default=4, help="POST connections, fan-out")
    parser.add_argument("--rate", type=float, default=10.0, help="latency: messages/s")
    parser.add_argument("--seconds", type=float, default=3.0, help="latency: duration")
    parser.add_argument("--posts", type=int, default=4000, help="publish-only POSTs")
    parser.add_argument("--batches", type=int, default=200, help="batch-publish POSTs")
    parser.add_argument("--batch-size", type=int, default=100, help="batch-publish messages/POST")
    parser.add_argument("--idle", type=int, default=2000, help="idle WebSockets")
    parser.add_argument("--handshakes", type=int, default=2000, help="handshakes, each way")
    parser.add_argument("--no-redis", action="store_true", help="skip the 2-process scenarios")
    parser.add_argument(
        "--client-messages", type=int, default=3000, help="messages per client publishing path"
    )
    parser.add_argument(
        "--outbox-rows", type=int, default=20_000, help="rows per outbox drain scenario (0: none)"
    )
    parser.add_argument(
        "--compression",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the permessage-deflate scenarios (2 KiB JSON fan-out with and without, idle RSS)",
    )
    parser.add_argument(
        "--redis-modes",
        default="standalone,sentinel,cluster",
        help="Redis modes to run the publish and fan-out scenarios on ('' for none)",
    )
    parser.add_argument(
        "--soak", type=float, default=180.0, help="soak seconds, 2 processes on Redis (0: none)"
    )
    parser.add_argument(
        "--soak-channels", type=int, default=120_000, help="distinct users' channels in the soak"
    )
    parser.add_argument("--soak-samples", type=int, default=24, help="points on the soak's curve")
    parser.add_argument("--soak-age", type=float, default=10.0, help="the soak's --history-age")
    parser.add_argument(
        "--soak-broker",
        choices=["redis", "memory"],
        default="redis",
        help="the soak on 2 processes and Redis, or on 1 process on its embedded broker",
    )
    parser.add_argument("--soak-only", action="store_true", help="run the soak and nothing else")
    parser.add_argument(
        "--scale",
        default="",
        metavar="COUNTS",
        help="the scale curve at these subscriber counts on workers on Redis, e.g. "
        "10000,50000,100000 (tests/bench/scale.py; minutes per point)",
    )
    parser.add_argument("--scale-only", action="store_true", help="the scale curve alone")
    parser.add_argument("--budget", type=float, default=150.0, help="skip 2-process past this (s)")
    options = parser.parse_args()
    if options.nchan and not nchan.installed():
        print(
            "Nchan needs nginx and libnginx-mod-nchan (make bench-nchan installs them)",
            file=sys.stderr,
        )
        return 2
    raise_nofile()
    started = time.monotonic()
    if uvloop is not None:
        uvloop.install()
    results = asyncio.run(main_async(options))
    runtime = time.monotonic() - started
    print()
    print(f"uvloop: {'used' if USING_UVLOOP else 'not installed, asyncio default loop'}; ", end="")
    print(f"CPUs: {os.cpu_count()}; runtime {runtime:.1f} s")
    print(table(results))
    for r in results:
        if r["scenario"] == "soak":
            print()
            print(soak.curve(r))
    for r in results:
        if r.get("client_cpu_s", 0) > 0.85 * r.get("wall_s", float("inf")):
            share = r["client_cpu_s"] / r["wall_s"]
            print(
                f"note: {r['server']}: {r['scenario']}: the client used {share:.0%} of a core: "
                "client-bound"
            )
    if options.nchan:
        print()
        servers = sorted({r["server"] for r in results}, key=lambda s: (not s.startswith("t"), s))
        print(f"ours vs Nchan ({'; '.join(servers)}); ↑/↓: higher/lower is better")
        print()
        print(comparison(results))
    fd, path = tempfile.mkstemp(prefix="tc-bench-", suffix=".json")
    with os.fdopen(fd, "w") as f:
        json.dump({"uvloop": USING_UVLOOP, "runtime_s": runtime, "results": results}, f, indent=2)
    print(f"\nJSON: {path}")
    bad = [
        f"{r['target']} {r['scenario']}"
        for r in results
        if r.get("lost")
        or r.get("duplicated")
        or r.get("out_of_order")
        or r.get("invalid")
        or r.get("error")
        or r.get("flat") is False
    ]
    if bad:
        print(
            "FAIL: lost, duplicated, out-of-order or invalid messages, errors, "
            f"or memory not flat, in {bad}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
