"""The standalone application: the channel routes as a whole Tornado app."""

from __future__ import annotations

import dataclasses
from typing import Any

import tornado.web

from ..node import Node
from .config import ChannelConfig
from .context import InFlight
from .hooks import ChannelHooks
from .pages import NotFoundHandler
from .publishing import PublishShortcut
from .routing import mount

CONFIG_FIELDS = {field.name for field in dataclasses.fields(ChannelConfig)} - {"prefix"}


class ChannelApplication(tornado.web.Application):
    """The standalone application, with the shortcut its server serves publishes by."""

    def __init__(self, rules: Any, shortcut: PublishShortcut, **settings: Any) -> None:
        super().__init__(rules, **settings)
        #: POSTs to publish, matched on the request's head alone (see publishing.py).
        self.publish_shortcut = shortcut


def make_app(
    node: Node,
    *,
    hooks: ChannelHooks | None = None,
    prefix: str = "/",
    in_flight: InFlight | None = None,
    config: ChannelConfig | None = None,
    **settings: Any,
) -> ChannelApplication:
    """An :class:`~tornado.web.Application` serving ``node``'s channels.

    Keyword arguments named like :class:`~tornado_channels.web.config.ChannelConfig`
    fields configure the channels (over ``config``, when given); the rest are
    Tornado application settings.
    Unmatched paths get a JSON 404 like every other error, and cross-site
    POSTs are refused (Tornado's ``cross_origin_protection``) unless their
    origin is in ``trusted_origins``.
    """
    options = {name: settings.pop(name) for name in CONFIG_FIELDS & settings.keys()}
    settings.setdefault("default_handler_class", NotFoundHandler)
    settings.setdefault("cross_origin_protection", True)
    routes = mount(node, prefix=prefix, hooks=hooks, in_flight=in_flight, config=config, **options)
    return ChannelApplication(routes.rules, routes.publish_shortcut, **settings)
