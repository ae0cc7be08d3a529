"""The standalone application: the channel routes as a whole Tornado app."""

from __future__ import annotations

from typing import Any

import tornado.web

from .handlers import NotFoundHandler
from .hooks import ChannelHooks
from .node import Node
from .routing import channel_routes


def make_app(
    node: Node,
    *,
    hooks: ChannelHooks | None = None,
    prefix: str = "/",
    max_message_size: int | None = None,
    ping_interval: float = 20.0,
    ping_timeout: float = 20.0,
    list_channels: bool = False,
    **settings: Any,
) -> tornado.web.Application:
    """An :class:`~tornado.web.Application` serving ``node``'s channels.

    Extra keyword arguments are Tornado application settings.  Unmatched
    paths get a JSON 404 like every other error.
    """
    settings.setdefault("default_handler_class", NotFoundHandler)
    options: dict[str, Any] = {
        "ping_interval": ping_interval,
        "ping_timeout": ping_timeout,
        "list_channels": list_channels,
    }
    if max_message_size is not None:
        options["max_message_size"] = max_message_size
    rules = channel_routes(node, prefix=prefix, hooks=hooks, **options)
    return tornado.web.Application(rules, **settings)
