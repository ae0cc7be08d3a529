"""The route table: channels at any path below a prefix, endpoints under ``_/``.

A WebSocket handshake and a plain request for the same path go to different
handlers; a custom :class:`~tornado.routing.Matcher` tells them apart.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import tornado.template
import tornado.web
from tornado.httputil import HTTPServerRequest
from tornado.routing import Matcher, PathMatches, Rule

from ..core.channels import is_reserved_path, path_below, path_text
from ..node import Node
from .config import ChannelConfig
from .connection import Heartbeat
from .context import InFlight, MountContext
from .hooks import ChannelHooks
from .metrics import NodeMetrics
from .ops import HealthHandler, MetricsHandler, OpenAPIHandler, StatsHandler
from .pages import ChannelHandler
from .presence import PresenceHandler
from .publishing import PublishEndpoint, PublishShortcut
from .sse import ChannelEventsHandler
from .tokens import Guard
from .websocket import ChannelSocketHandler

PACKAGE_DIR = Path(__file__).resolve().parent


def is_websocket_upgrade(request: HTTPServerRequest) -> bool:
    """Whether ``request`` asks to upgrade to a WebSocket."""
    return request.headers.get("Upgrade", "").lower() == "websocket"


def wants_event_stream(request: HTTPServerRequest) -> bool:
    """Whether ``request`` is a GET for server-sent events (what EventSource sends)."""
    return request.method == "GET" and "text/event-stream" in request.headers.get("Accept", "")


def request_kind(request: HTTPServerRequest) -> str:
    """Which edge serves a request for a channel: websocket, events, publish or http."""
    if is_websocket_upgrade(request):
        return "websocket"
    if request.method == "POST":
        return "publish"
    return "events" if wants_event_stream(request) else "http"


class ChannelMatcher(Matcher):
    """Matches any path below ``prefix`` except the reserved ``<prefix>_/``.

    It matches only requests of one ``kind`` (see :func:`request_kind`):
    WebSocket upgrades, event streams, or plain requests.  The handler receives
    the rest of the path, still percent-encoded, as the ``path`` keyword argument.
    """

    def __init__(self, prefix: str, *, kind: str) -> None:
        self.prefix = prefix
        self.kind = kind

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        """The handler's ``path`` argument, or None when this rule does not apply."""
        rest = path_below(self.prefix, request.path)
        if rest is None or is_reserved_path(rest):
            return None
        if request_kind(request) != self.kind:
            return None
        return {"path_args": [], "path_kwargs": {"path": path_text(rest)}}

    def reverse(self, *args: Any) -> str | None:
        """Not reversible: any path below the prefix matches."""
        return None


class PresenceMatcher(Matcher):
    """Matches ``<prefix>_/presence/<path>``; the handler gets the path still percent-encoded."""

    def __init__(self, prefix: str) -> None:
        self.start = prefix + "_/presence/"

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        """The handler's ``path`` argument, or None when this rule does not apply."""
        if not request.path.startswith(self.start):
            return None
        rest = request.path[len(self.start) :]
        return {"path_args": [], "path_kwargs": {"path": path_text(rest)}}

    def reverse(self, *args: Any) -> str | None:
        """Not reversible: any path below it matches."""
        return None


def channel_routes(
    node: Node,
    *,
    prefix: str = "/",
    hooks: ChannelHooks | None = None,
    in_flight: InFlight | None = None,
    config: ChannelConfig | None = None,
    **options: Any,
) -> list[Rule]:
    """Rules that serve the channels of ``node`` below ``prefix``.

    ``options`` are :class:`~tornado_channels.web.config.ChannelConfig` fields
    (over ``config``, when given)
    (``max_message_size``, ``publish_key``, ``read_only``, ...); they apply to
    these routes only.  Put the rules after a host application's own: they
    match every path below ``prefix``.  ``node`` must be started
    (``await node.start()``) before the server accepts connections.
    ``in_flight`` counts the publishing requests in progress, for a server
    that waits for them on shutdown.
    """
    return mount(
        node, prefix=prefix, hooks=hooks, in_flight=in_flight, config=config, **options
    ).rules


@dataclasses.dataclass(frozen=True)
class Mount:
    """The rules of one mount point, and the shortcut to its publishing routes."""

    rules: list[Rule]
    publish_shortcut: PublishShortcut


def mount(
    node: Node,
    *,
    prefix: str = "/",
    hooks: ChannelHooks | None = None,
    in_flight: InFlight | None = None,
    config: ChannelConfig | None = None,
    **options: Any,
) -> Mount:
    """What :func:`channel_routes` returns, with the shortcut a standalone server serves by."""
    if not prefix.endswith("/"):
        prefix += "/"
    if config is None:
        config = ChannelConfig(prefix=prefix, **options)
    else:
        config = dataclasses.replace(config, prefix=prefix, **options)
    hooks = hooks if hooks is not None else ChannelHooks()
    # One timer pings every WebSocket of this mount point (none when disabled).
    heartbeat = (
        Heartbeat(config.ping_interval, config.ping_timeout) if config.ping_interval else None
    )
    shared = MountContext(
        node=node,
        hooks=hooks,
        config=config,
        guard=Guard.from_config(config),
        in_flight=in_flight if in_flight is not None else InFlight(),
        heartbeat=heartbeat,
        templates=tornado.template.Loader(str(PACKAGE_DIR / "templates")),
    )
    context = {"mount": shared}
    publishing = PublishEndpoint(shared)
    batch = PublishEndpoint(shared, batch=True)
    rules = [
        # First: a POST to a channel, the hottest request, is matched by the first rule tried
        # (the kinds are exclusive, and no channel lies under _/, so order is free).
        Rule(ChannelMatcher(prefix, kind="publish"), publishing),
        Rule(PathMatches(prefix + "_/health"), HealthHandler, {"node": node}),
        Rule(PathMatches(prefix + "_/publish"), batch),
        Rule(PathMatches(prefix + "_/metrics"), MetricsHandler, {"metrics": NodeMetrics(node)}),
        Rule(PathMatches(prefix + "_/stats"), StatsHandler, context),
        Rule(PathMatches(prefix + "_/openapi.json"), OpenAPIHandler),
        Rule(PresenceMatcher(prefix), PresenceHandler, context),
        Rule(
            PathMatches(prefix + r"_/static/(.*)"),
            tornado.web.StaticFileHandler,
            {"path": str(PACKAGE_DIR / "static")},
        ),
        Rule(ChannelMatcher(prefix, kind="websocket"), ChannelSocketHandler, context),
        Rule(ChannelMatcher(prefix, kind="events"), ChannelEventsHandler, context),
        Rule(ChannelMatcher(prefix, kind="http"), ChannelHandler, context),
    ]
    return Mount(rules, PublishShortcut(prefix, publishing, batch))
