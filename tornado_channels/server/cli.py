"""The ``tornado-channels`` command: one server process.

Every flag can also be set in the environment as ``TORNADO_CHANNELS_<FLAG>``
(``--redis-url`` is ``TORNADO_CHANNELS_REDIS_URL``); a flag on the command
line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
from collections.abc import Callable, Sequence

from tornado.netutil import bind_sockets

from .. import __version__
from ..brokers.base import Broker
from ..brokers.memory import MemoryBroker
from ..brokers.redis import RedisBroker, redact_url
from ..node import Node
from ..web.app import make_app
from ..web.config import DEFAULT_MAX_BATCH_BYTES, DEFAULT_MAX_MESSAGE_SIZE
from ..web.publishing import InFlight
from .accept import Acceptor
from .wire import WireServer

log = logging.getLogger("tornado_channels")

ENV_PREFIX = "TORNADO_CHANNELS_"


def _env_default(flag: str, default: object) -> object:
    return os.environ.get(ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper(), default)


def _env_switch(flag: str) -> bool:
    value = str(_env_default(flag, "")).strip().lower()
    return value in ("1", "true", "yes", "on")


def _split(value: str) -> tuple[str, ...]:
    """A comma-separated flag value as a tuple, without blanks."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser; defaults come from the environment when set."""
    parser = argparse.ArgumentParser(
        prog="tornado-channels",
        description="WebSocket channels: subscribe at ws://host/<channel>, "
        "publish with POST /<channel> (or POST /<prefix>/ for every channel below it).",
        epilog=f"Every flag can be set in the environment as {ENV_PREFIX}<FLAG>, "
        f"e.g. {ENV_PREFIX}REDIS_URL.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )

    def flag(name: str, default: object, help: str, **kwargs: object) -> None:
        parser.add_argument(name, default=_env_default(name, default), help=help, **kwargs)  # type: ignore[arg-type]

    flag("--port", 5000, "TCP port to listen on", type=int)
    flag("--address", "127.0.0.1", "address to listen on")
    flag(
        "--redis-url",
        None,
        "Redis to relay messages through, e.g. redis://127.0.0.1:6379/0; "
        "without it the process uses its embedded in-memory broker (single process)",
    )
    flag("--redis-prefix", "tornado_channels:", "namespace for the Redis pub/sub channels used")
    flag(
        "--redis-timeout",
        2.0,
        "seconds Redis may take to answer a PUBLISH (beyond: 504, outcome unknown, never "
        "retried) or a liveness probe (beyond: reconnect)",
        type=float,
    )
    flag(
        "--redis-probe-interval",
        2.0,
        "seconds of silence on the Redis subscription before a liveness probe is sent",
        type=float,
    )
    flag(
        "--history-size",
        100,
        "messages kept per channel (and per subtree) for clients that resume from a position",
        type=int,
    )
    flag(
        "--history-age",
        300.0,
        "seconds a message stays recoverable; older ones count as missed",
        type=float,
    )
    flag(
        "--max-message-size",
        DEFAULT_MAX_MESSAGE_SIZE,
        "largest message in bytes: POST bodies over it get 413, WebSocket messages 1009",
        type=int,
    )
    flag(
        "--max-buffered-bytes",
        1 << 20,
        "unread bytes a WebSocket client may fall behind before it is closed as a slow consumer",
        type=int,
    )
    flag("--ping-interval", 20.0, "seconds between WebSocket pings (0 disables them)", type=float)
    flag(
        "--ping-timeout",
        20.0,
        "seconds without a pong before a WebSocket peer is dropped (at most --ping-interval)",
        type=float,
    )
    flag(
        "--publish-key",
        None,
        "require 'Authorization: Bearer <key>' on every POST (401 without, 403 if wrong); "
        "best set through the environment, where other users cannot see it",
    )
    flag(
        "--read-only",
        "",
        "comma-separated channel prefixes WebSocket clients may not publish to "
        "('/' for every channel); POSTs are unaffected",
    )
    flag(
        "--trusted-origins",
        "",
        "comma-separated origins (https://app.example) allowed to open WebSockets and "
        "POST from another site; other cross-site requests get 403",
    )
    flag(
        "--max-connections",
        10000,
        "WebSocket connections this process accepts; beyond, the handshake gets 503 (0: no cap)",
        type=int,
    )
    flag(
        "--client-rate",
        50.0,
        "frames per second (messages, fragments, pings) one WebSocket client may send "
        "on average (0: no limit); beyond its burst it is closed with 1008",
        type=float,
    )
    flag("--client-burst", 100.0, "frames a WebSocket client may send at once", type=float)
    flag(
        "--idle-timeout",
        10.0,
        "seconds a connection may take to send a request's headers, or sit idle between requests",
        type=float,
    )
    flag("--body-timeout", 10.0, "seconds a request may take to send its body", type=float)
    parser.add_argument(
        "--xheaders",
        action="store_true",
        default=_env_switch("--xheaders"),
        help="trust X-Real-IP/X-Forwarded-For/X-Forwarded-Proto (set it behind nginx only)",
    )
    parser.add_argument(
        "--list-channels",
        action="store_true",
        default=_env_switch("--list-channels"),
        help="list the active channels on the home page (off: channel names can be private)",
    )
    flag(
        "--ready-timeout",
        5.0,
        "seconds to wait for the broker before listening anyway (and reporting unready), "
        "so a proxy never sends a starting process traffic it must refuse",
        type=float,
    )
    flag(
        "--sse-heartbeat",
        15.0,
        "seconds between heartbeats on an idle event stream (below proxies' read timeouts)",
        type=float,
    )
    flag("--max-batch-messages", 1000, "most messages in one POST /_/publish", type=int)
    flag(
        "--max-batch-bytes",
        DEFAULT_MAX_BATCH_BYTES,
        "largest POST /_/publish body in bytes (413 beyond)",
        type=int,
    )
    flag(
        "--event-loop",
        "auto",
        "asyncio event loop: uvloop (faster; 'auto' uses it when installed) or asyncio's own",
        choices=["auto", "uvloop", "asyncio"],
    )
    flag("--drain-timeout", 5.0, "seconds to wait for clients to close on shutdown", type=float)
    flag(
        "--log-level",
        "info",
        "debug logs every message published and delivered",
        choices=["debug", "info", "warning", "error"],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def configure_logging(level: str) -> None:
    """Lifecycle events at INFO; per-message lines and access logs at DEBUG."""
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    # One access-log line per publish would be a per-message log at INFO.
    access = logging.DEBUG if level == "debug" else logging.WARNING
    logging.getLogger("tornado.access").setLevel(access)


def make_broker(args: argparse.Namespace) -> Broker:
    """The broker the flags ask for."""
    if args.redis_url:
        return RedisBroker(
            args.redis_url,
            prefix=args.redis_prefix,
            command_timeout=args.redis_timeout,
            probe_timeout=args.redis_timeout,
            probe_interval=args.redis_probe_interval,
            history_size=args.history_size,
            history_age=args.history_age,
        )
    return MemoryBroker(history_size=args.history_size, history_age=args.history_age)


async def serve(args: argparse.Namespace) -> int:
    """Run one server until SIGTERM or SIGINT, then shut down gracefully."""
    node = Node(make_broker(args), max_buffered_bytes=args.max_buffered_bytes)
    in_flight = InFlight()
    app = make_app(
        node,
        in_flight=in_flight,
        max_message_size=args.max_message_size,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        list_channels=args.list_channels,
        publish_key=args.publish_key or None,
        read_only=_split(args.read_only),
        trusted_origins=_split(args.trusted_origins),
        max_connections=args.max_connections,
        client_rate=args.client_rate,
        client_burst=args.client_burst,
        sse_heartbeat=args.sse_heartbeat,
        max_batch_messages=args.max_batch_messages,
        max_batch_bytes=args.max_batch_bytes,
    )
    # Slow clients (slowloris) get seconds, not Tornado's default hour.
    server = WireServer(
        app,
        xheaders=args.xheaders,
        idle_timeout=args.idle_timeout,
        body_timeout=args.body_timeout,
        max_body_size=max(args.max_message_size, args.max_batch_bytes),
    )
    acceptor = Acceptor(server.protocol)
    try:
        # Bind first: a taken port is an error now, not after the broker wait.
        sockets = bind_sockets(args.port, args.address)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", args.address, args.port, exc)
        return 1
    await node.start()
    if not await node.wait_connected(args.ready_timeout):
        log.warning(
            "broker not connected after %.1fs: listening anyway, unready (health answers 503)",
            args.ready_timeout,
        )
    # Accept only now: behind nginx, a worker that is still connecting to Redis
    # refuses connections (nginx moves on) instead of answering 503.
    acceptor.listen(sockets)
    where = redact_url(args.redis_url) if args.redis_url else "embedded, single process"
    log.info(
        "listening on http://%s:%d (broker: %s, %s)",
        args.address,
        args.port,
        node.broker.kind,
        where,
    )

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()

    log.info("shutting down: closing %d subscriptions", len(node.hub))
    # Stop accepting; close WebSockets with 1001 so clients reconnect elsewhere;
    # let POSTs already in progress finish; only then drop idle connections.
    acceptor.stop()
    await node.drain(args.drain_timeout)
    if not await in_flight.wait_idle(args.drain_timeout):
        log.warning("publishes still in progress after %.1fs; closing anyway", args.drain_timeout)
    try:
        await asyncio.wait_for(server.close_all_connections(), args.drain_timeout)
    except asyncio.TimeoutError:
        log.warning("connections still open after %.1fs; closing anyway", args.drain_timeout)
    await node.stop()
    log.info("stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tornado-channels`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    loop_factory = event_loop_factory(args.event_loop)
    if loop_factory is None:
        parser.error("--event-loop uvloop: uvloop is not installed (pip install uvloop)")
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(serve(args))


def event_loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop to run on: uvloop when chosen or, for "auto", when installed.

    uvloop runs Tornado's IOLoop unchanged and takes less CPU per callback
    and per socket event (measured in the README's "Performance").  None
    when uvloop is asked for and missing.
    """
    if choice == "asyncio":
        return asyncio.new_event_loop
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop if choice == "auto" else None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
