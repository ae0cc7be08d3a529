"""The standalone server's own settings, each declared once (see core/settings.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..brokers.settings import BrokerSettings
from ..core.settings import setting
from ..hub import MAX_BUFFERED_BYTES
from ..outbox.settings import OutboxSettings
from ..web.backend import BackendSettings
from ..web.config import ChannelConfig
from ..web.events import EventSettings
from ..web.limits import BODY_TIMEOUT, IDLE_TIMEOUT


@dataclass(frozen=True)
class ServerSettings:
    """Where the process listens, its timeouts, how it starts and stops."""

    port: int = setting(5000, "TCP port to listen on")
    address: str = setting("127.0.0.1", "address to listen on")
    xheaders: bool = setting(
        False, "trust X-Real-IP/X-Forwarded-For/X-Forwarded-Proto (set it behind a proxy only)"
    )
    # Shared with mounted applications (web/limits.py: http_server_options).
    idle_timeout: float = setting(
        IDLE_TIMEOUT,
        "seconds a connection may take to send a request's headers, or sit idle between requests",
        metavar="SECONDS",
    )
    body_timeout: float = setting(
        BODY_TIMEOUT, "seconds a request may take to send its body", metavar="SECONDS"
    )
    max_buffered_bytes: int = setting(
        MAX_BUFFERED_BYTES,
        "unread bytes a subscriber may fall behind before it is closed as a slow consumer (4008)",
        metavar="BYTES",
    )
    ready_timeout: float = setting(
        5.0,
        "seconds to wait for the broker before listening anyway (and reporting unready), "
        "so a proxy never sends a starting process traffic it must refuse",
        metavar="SECONDS",
    )
    drain_timeout: float = setting(
        5.0,
        "seconds each step of a shutdown waits: clients closing, publishes in progress, "
        "idle connections",
        metavar="SECONDS",
    )
    keepalive_grace: float = setting(
        0.0,
        "on shutdown, seconds an idle kept-alive connection is left for its client to close "
        "(requests on it are still answered, with Connection: close); behind a proxy that "
        "pools connections, above its keepalive_timeout, so it never sends a request on a "
        "connection as the server closes it",
        metavar="SECONDS",
    )
    event_loop: str = setting(
        "auto",
        "asyncio event loop: uvloop (faster; 'auto' uses it when installed) or asyncio's own",
        choices=("auto", "uvloop", "asyncio"),
    )
    log_level: str = setting(
        "info",
        "debug logs every message published and delivered, and every request",
        choices=("debug", "info", "warning", "error"),
    )


@dataclass(frozen=True)
class Settings:
    """Everything one server process is configured with."""

    server: ServerSettings
    broker: BrokerSettings
    channels: ChannelConfig
    hooks: BackendSettings = field(default_factory=BackendSettings)
    outbox: OutboxSettings = field(default_factory=OutboxSettings)
    events: EventSettings = field(default_factory=EventSettings)
