"""The publishing edge: ``POST /<channel>`` and ``POST /_/publish``, without RequestHandler.

A POST is the hottest request there is, and Tornado's ``RequestHandler``
costs more than twice what the HTTP connection itself does: a handler
object, its UI namespaces, a default header set, a coroutine and a Task,
and an access-log line formatted even when nothing logs it (the README's
"Performance" has the profile).  So publishing is served by a plain
:class:`~tornado.httputil.HTTPMessageDelegate` (publish_request.py):

- routed like any handler (:class:`PublishEndpoint`) where Tornado serves
  the HTTP (an application mounting the channels);
- on the standalone server, taken straight from the wire
  (:class:`PublishShortcut`): no ``HTTPHeaders``, no ``HTTPServerRequest``,
  no walk of the rule table; the same checks, hooks and answers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tornado import httputil
from tornado.routing import Router

from ..core.channels import is_reserved_path, path_below, path_text
from ..core.http1 import RequestHead
from .context import MountContext
from .hooks import ChannelHooks
from .publish_request import PublishRequest
from .server_connection import WireConnection, connection_of, tornado_head


class PublishEndpoint(Router):
    """The route target for publishing: one delegate per request.

    ``batch`` selects ``POST /_/publish`` (many messages, see batch.py) over
    ``POST /<channel>`` (the body is the message).  A :class:`Router`, so it
    is handed the request the routing already parsed, and the matcher's
    ``path``.
    """

    def __init__(self, mount: MountContext, *, batch: bool = False) -> None:
        self.mount = mount
        self.batch = batch
        #: Whether ``hooks`` decide who publishes (the default lets everyone:
        #: then no request is built for it).
        self.custom_authorization = (
            type(mount.hooks).authorize_publish is not ChannelHooks.authorize_publish
        )
        #: Whether ``hooks`` filter what is POSTed without the key (``on_publish``).
        self.custom_publish = type(mount.hooks).on_publish is not ChannelHooks.on_publish
        # Publishes in progress: the loop keeps only weak references to tasks.
        self.tasks: set[asyncio.Task[None]] = set()

    def find_handler(
        self, request: httputil.HTTPServerRequest, **kwargs: Any
    ) -> httputil.HTTPMessageDelegate:
        """A delegate for ``request``; the matcher's ``path`` is the channel's (see routing.py)."""
        path = kwargs.get("path_kwargs", {}).get("path", "")
        assert request.connection is not None
        method, uri = request.method or "", request.uri or ""
        connection = connection_of(request)
        return PublishRequest(self, connection, method, uri, request.headers, path, request)


#: Query fields past which the shortcut leaves a request to Tornado: the most
#: its request parses by default (``ParseBodyConfig.urlencoded.max_arguments``).
_MOST_FIELDS = httputil.ParseBodyConfig().urlencoded.max_arguments - 1


class PublishShortcut:
    """The publishing routes of one mount point, matched on a request's head alone.

    The standalone server's wire asks it first for every POST: it answers
    with the request's :class:`PublishRequest` (already past its header
    checks) when the routes would have sent the request to a
    :class:`PublishEndpoint`, and None for everything else, which Tornado
    routes as usual.  ``channels`` serves ``POST <prefix><channel>``,
    ``batch`` ``POST <prefix>_/publish``.
    """

    def __init__(self, prefix: str, channels: PublishEndpoint, batch: PublishEndpoint) -> None:
        self.prefix = prefix
        self.channels = channels
        self.batch = batch

    def __call__(self, connection: WireConnection, head: RequestHead) -> PublishRequest | None:
        """The publishing request ``head`` starts on ``connection``, or None if not one."""
        if head.method != "POST" or not head.target.startswith("/"):
            return None
        if head.by_name.get("upgrade", "").lower() == "websocket":
            return None  # A WebSocket route's, as routing.request_kind says.
        path, _, query = head.target.partition("?")
        if query.count("&") >= _MOST_FIELDS:
            return None  # Tornado's request refuses such a query: its routing answers the 400.
        rest = path_below(self.prefix, path)
        if rest is None:
            return None
        if rest == "_/publish":
            endpoint = self.batch
        elif is_reserved_path(rest):
            return None
        else:
            endpoint = self.channels

        def request() -> httputil.HTTPServerRequest:
            start_line, headers = tornado_head(head)
            return httputil.HTTPServerRequest(
                start_line=start_line, headers=headers, connection=connection
            )

        publishing = PublishRequest(
            endpoint, connection, head.method, head.target, head.by_name, path_text(rest), request
        )
        publishing.head_received()
        return publishing
