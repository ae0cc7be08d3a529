"""One server process: the node, the application, the wire, and a graceful stop."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from typing import TYPE_CHECKING, Any

from tornado.netutil import bind_sockets

from ..brokers.factory import make_broker
from ..node import Node
from ..outbox.settings import OutboxSettings
from ..web.app import make_app
from ..web.backend import installed
from ..web.context import InFlight
from ..web.events import EventSender
from ..web.ops import HEALTH_REPORTS
from .accept import Acceptor
from .settings import Settings
from .wire import WireServer

if TYPE_CHECKING:
    from ..outbox.consumer import OutboxConsumer

log = logging.getLogger("tornado_channels")


def make_outbox(node: Node, settings: OutboxSettings) -> OutboxConsumer | None:
    """The outbox consumer ``settings`` ask for, or None; raises ImportError without psycopg."""
    if settings.outbox_dsn is None:
        return None
    try:
        from ..outbox.consumer import OutboxConsumer
    except ImportError as exc:
        raise ImportError(f"{exc}: pip install 'tornado_channels[outbox]'") from None
    return OutboxConsumer(node, settings)


async def serve(settings: Settings) -> int:
    """Run one server until SIGTERM or SIGINT, then shut down gracefully."""
    server_settings, channels = settings.server, settings.channels
    try:
        broker = make_broker(settings.broker)
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    node = Node(broker, max_buffered_bytes=server_settings.max_buffered_bytes)
    try:
        outbox = make_outbox(node, settings.outbox)
    except (ImportError, ValueError) as exc:
        log.error("--outbox-dsn: %s", exc)
        return 2
    events = settings.events
    sender: EventSender | None = None
    if events.events_url:
        try:
            recorded = node.record_events(events.events_max_backlog)
        except ValueError as exc:
            log.error("%s", exc)
            return 2
        sender = EventSender(recorded, events.events_url, timeout=events.events_timeout)
    in_flight = InFlight()
    hooks = installed(settings.hooks)  # --auth-url, --publish-url
    reports = {"outbox": outbox.health} if outbox is not None else {}
    tornado_settings: dict[str, Any] = {HEALTH_REPORTS: reports}
    app = make_app(node, hooks=hooks, in_flight=in_flight, config=channels, **tornado_settings)
    # Slow clients (slowloris) get seconds, not Tornado's default hour.
    wire = WireServer(
        app,
        xheaders=server_settings.xheaders,
        idle_timeout=server_settings.idle_timeout,
        body_timeout=server_settings.body_timeout,
        max_body_size=max(channels.max_message_size, channels.max_batch_bytes),
        shortcut=app.publish_shortcut,
    )
    acceptor = Acceptor(wire.protocol)
    address, port = server_settings.address, server_settings.port
    try:
        # Bind first: a taken port is an error now, not after the broker wait.
        sockets = bind_sockets(port, address)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", address, port, exc)
        return 1
    await node.start()
    if sender is not None:
        sender.start()
    if not await node.wait_connected(server_settings.ready_timeout):
        log.warning(
            "broker not connected after %.1fs: listening anyway, unready (health answers 503)",
            server_settings.ready_timeout,
        )
    # Accept only now: behind nginx, a worker that is still connecting to Redis
    # refuses connections (nginx moves on) instead of answering 503.
    # What exists now (modules, the app, the node) lives as long as the
    # process: kept out of the collector's full passes, which then scan only
    # what came later.  Measured in docs/performance.md.
    gc.freeze()
    acceptor.listen(sockets)
    if outbox is not None:
        outbox.start()
    log.info("listening on http://%s:%d (broker: %s)", address, port, node.broker.describe())

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()

    drain = server_settings.drain_timeout
    log.info("shutting down: closing %d subscriptions", len(node.hub))
    # Stop accepting; close WebSockets with 1001 so clients reconnect elsewhere;
    # let POSTs already in progress finish; only then drop idle connections.
    acceptor.stop()
    await node.drain(drain)
    if not await in_flight.wait_idle(drain):
        log.warning("publishes still in progress after %.1fs; closing anyway", drain)
    grace = server_settings.keepalive_grace
    if grace and wire.connections:
        log.info(
            "leaving %d connections up to %.1fs for their clients to close",
            len(wire.connections),
            grace,
        )
    try:
        await asyncio.wait_for(wire.close_all_connections(grace), grace + drain)
    except asyncio.TimeoutError:
        log.warning("connections still open after %.1fs; closing anyway", drain)
    if outbox is not None:
        # Before the node: a batch in progress finishes while its broker still runs.
        await outbox.stop(drain)
    if sender is not None:
        # The disconnects of the drain delivered first, while the broker still runs.
        await sender.stop(drain)
    await node.stop()
    if hooks is not None:
        hooks.close()
    log.info("stopped")
    return 0
