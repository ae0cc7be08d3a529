"""Admitting a subscriber: what the WebSocket and event-stream edges check before subscribing.

The channel's name, the request's origin, this process's capacity, the
``authorize_subscribe`` hook, and the position to resume from.  A client that
asks for positions without having one starts from the head, read *before*
subscribing: what is published from then on is its own, and resuming from
the head leaves no gap before the live subscription takes over.
"""

from __future__ import annotations

from collections.abc import Collection

from tornado.httputil import HTTPServerRequest

from ..brokers.base import BrokerUnavailable
from ..core.channels import Channel, InvalidChannel, parse_channel
from ..core.frames import Encoding
from ..core.publication import InvalidPosition, Position
from ..node import Node
from ..subscription import Subscription
from . import origins
from .config import ChannelConfig
from .errors import ApiError, authorize, broker_unavailable, invalid_channel
from .hooks import ChannelHooks


async def admit(
    request: HTTPServerRequest,
    path: str,
    *,
    since: str | None,
    encoding: Encoding,
    node: Node,
    hooks: ChannelHooks,
    config: ChannelConfig,
    trusted: Collection[str] = (),
) -> Subscription:
    """A subscription for ``request`` to the channel at ``path``, not yet started.

    Raises the :class:`~.errors.ApiError` that refuses it.  ``trusted`` adds
    origins (a host application's own ``trusted_origins`` setting).
    """
    try:
        channel: Channel = parse_channel(path)
    except InvalidChannel as exc:
        raise invalid_channel(exc) from None
    if not origins.allowed(request.headers, (*config.trusted_origins, *trusted)):
        origin = request.headers.get("Origin")
        raise ApiError(403, "forbidden_origin", f"connections from {origin} are not allowed")
    cap = config.max_connections
    if cap and len(node.hub) >= cap:
        raise ApiError(
            503,
            "too_many_connections",
            f"this process is at its limit of {cap} subscribers",
            {"Retry-After": "1"},
        )
    await authorize(
        hooks.authorize_subscribe(request, channel),
        f"subscribing to '{channel}' is not allowed",
    )
    position: Position | None = None
    if since is not None:
        try:
            position = Position.parse(since)
        except InvalidPosition as exc:
            raise ApiError(400, "invalid_position", str(exc)) from None
    elif encoding is not Encoding.RAW:
        try:
            position = await node.head()
        except BrokerUnavailable as exc:
            raise broker_unavailable(exc) from None
    return Subscription(node, channel, encoding, position)


async def start(subscription: Subscription) -> None:
    """Subscribe; raise the 503 when the broker cannot take the subscription."""
    try:
        await subscription.start()
    except BrokerUnavailable as exc:
        raise broker_unavailable(exc) from None
