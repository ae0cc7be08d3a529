"""HTTP edges: publish by POST, the live pages, and the health check.

Handlers are thin: they parse, authorize, and hand over to the node.
Dependencies arrive through ``initialize`` from the route table.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

import tornado.template
import tornado.web
from tornado.httputil import HTTPHeaders

from ..core.channels import Channel, InvalidChannel, Subtree, Target, parse_target
from ..node import Node
from ..web.config import ChannelConfig
from ..web.hooks import ChannelHooks, Reject, resolve

# Pages run only our own script and style, and nothing can frame them.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class ApiError(tornado.web.HTTPError):
    """An HTTP error answered with ``{"error": code, "message": text}`` and ``headers``."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        # HTTPError formats log_message with %; keep user text out of the format.
        super().__init__(status, "%s", message)
        self.error = error
        self.message = message
        # Carried here because Tornado clears a handler's headers before write_error.
        self.headers = headers or {}
        #: More fields for the JSON body (e.g. which entry of a batch is at fault).
        self.details = details or {}


def invalid_channel(exc: InvalidChannel) -> ApiError:
    """The 400 for a path that is not a valid channel name."""
    return ApiError(400, "invalid_channel", str(exc))


def broker_unavailable(exc: Exception) -> ApiError:
    """The 503 for a publish or subscription the broker cannot take now."""
    return ApiError(503, "broker_unavailable", str(exc), {"Retry-After": "1"})


def same_origin(origin: str, headers: HTTPHeaders) -> bool:
    """Whether ``origin`` names the host the request was sent to (as Tornado compares them)."""
    return urlsplit(origin).netloc.lower() == headers.get("Host", "").lower()


async def authorize(decision: bool | Awaitable[bool], refusal: str) -> None:
    """Raise a 403 unless an ``authorize_*`` hook's decision allows the request.

    ``refusal`` is the message for a plain False; a :class:`Reject` gives its own.
    """
    try:
        allowed = await resolve(decision)
    except Reject as exc:
        raise ApiError(403, "forbidden", exc.reason) from None
    if not allowed:
        raise ApiError(403, "forbidden", refusal)


class JSONErrorsMixin(tornado.web.RequestHandler):
    """Every error this handler sends is a JSON body naming the problem.

    A 405 says in ``Allow`` which methods the path takes: those the handler
    implements, or ``ALLOW`` when others reach it through other routes.
    """

    #: The methods the path takes, when not just those this handler implements.
    ALLOW: tuple[str, ...] = ()

    def allowed_methods(self) -> tuple[str, ...]:
        """What a 405 lists in ``Allow``."""
        if self.ALLOW:
            return self.ALLOW
        base = tornado.web.RequestHandler
        return tuple(
            method
            for method in self.SUPPORTED_METHODS
            if getattr(type(self), method.lower(), None) is not getattr(base, method.lower(), None)
        )

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Log server errors only."""
        # A client error is already in the access log (at WARNING); logging
        # it again here would double every line a bad client causes.
        if isinstance(value, ApiError) and value.status_code < 500:
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Answer ``{"error": code, "message": text}``."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        body: dict[str, Any]
        if isinstance(exc, ApiError):
            body = {"error": exc.error, "message": exc.message, **exc.details}
            for name, value in exc.headers.items():
                self.set_header(name, value)
        else:
            body = {"error": self._reason.lower().replace(" ", "_"), "message": self._reason}
        if status_code == 405:
            allowed = self.allowed_methods()
            self.set_header("Allow", ", ".join(allowed))
            body["message"] = f"{self.request.method} not allowed here; use {' or '.join(allowed)}"
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(body))


class ChannelHandler(JSONErrorsMixin):
    """``GET /<channel>`` is the channel's live page (POSTs go to publishing.py)."""

    SUPPORTED_METHODS = ("GET", "HEAD")
    # A channel's path also takes POST (the publishing edge) and upgrades.
    ALLOW = ("GET", "HEAD", "POST")

    def initialize(
        self,
        node: Node,
        hooks: ChannelHooks,
        config: ChannelConfig,
        templates: tornado.template.Loader,
    ) -> None:
        """Take the shared node, hooks, config and templates from the route table."""
        self.node = node
        self.hooks = hooks
        self.config = config
        self.templates = templates

    def prepare(self) -> None:
        """Parse the channel from the path."""
        try:
            self.target: Target = parse_target(self.path_kwargs["path"])
        except InvalidChannel as exc:
            raise invalid_channel(exc) from None

    def get(self, path: str) -> None:
        """The channel's live page, or the home page for the root."""
        target = self.target
        if isinstance(target, Subtree) and target.prefix:
            raise ApiError(
                400,
                "invalid_channel",
                f"'{target}' ends with '/' and names a subtree: subtrees can be "
                "published to, not viewed",
            )
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")
        namespace = {"static": self.config.static_prefix, "home": self.config.prefix}
        if isinstance(target, Channel):
            page = self.templates.load("channel.html").generate(
                channel=target.name, publish_url=self._url_without_query(), **namespace
            )
        else:
            channels = None
            if self.config.list_channels:
                by_size = sorted(
                    self.node.hub.channels().items(), key=lambda item: (-item[1], item[0])
                )
                channels = by_size[:50]
            page = self.templates.load("home.html").generate(
                channels=channels, base_url=self._url_without_query(), **namespace
            )
        self.finish(page)

    def head(self, path: str) -> None:
        """What GET answers, without the body."""
        self.get(path)

    def _url_without_query(self) -> str:
        # For the curl examples on the pages: a page's own ?query is not the channel's.
        return f"{self.request.protocol}://{self.request.host}{self.request.path}"


class NotFoundHandler(JSONErrorsMixin):
    """Any path no rule matched (e.g. an unknown ``/_/`` endpoint): a JSON 404."""

    def prepare(self) -> None:
        """Refuse: nothing lives here."""
        raise ApiError(404, "not_found", f"no endpoint at {self.request.path}")


class HealthHandler(JSONErrorsMixin):
    """``GET /_/health``: 200 while the broker is connected, 503 otherwise."""

    def initialize(self, node: Node) -> None:
        """Take the node from the route table."""
        self.node = node

    def get(self) -> None:
        """Report whether the broker is connected."""
        connected = self.node.connected
        self.set_status(200 if connected else 503)
        self.set_header("Cache-Control", "no-store")
        self.finish(
            {
                "status": "ok" if connected else "unavailable",
                "broker": self.node.broker.kind,
                "connected": connected,
                "subscriptions": len(self.node.hub),
            }
        )

    head = get
