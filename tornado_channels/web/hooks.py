"""Hooks: where a host application puts its own logic.

Subclass :class:`ChannelHooks`, override what you need, and pass an instance
to :func:`tornado_channels.channel_routes` (or ``make_app``).  Every hook may
be a plain method or a coroutine.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from typing import TypeVar

from tornado.httputil import HTTPServerRequest

from ..core.channels import Channel, Target

T = TypeVar("T")


class Reject(Exception):
    """Raised by a hook to refuse, with a reason shown to the client.

    From :meth:`ChannelHooks.on_client_message` it closes the WebSocket with
    1008; from an ``authorize_*`` hook it answers 403.
    """

    def __init__(self, reason: str = "rejected") -> None:
        super().__init__(reason)
        self.reason = reason


class ChannelHooks:
    """Default hooks: everyone may subscribe and publish; messages pass unchanged."""

    def authorize_subscribe(
        self, request: HTTPServerRequest, channel: Target
    ) -> bool | Awaitable[bool]:
        """Whether ``request`` may subscribe to ``channel`` (or a subtree: ``users/``).

        Runs before the upgrade: False (or :class:`Reject`) answers 403.
        """
        return True

    def authorize_publish(
        self, request: HTTPServerRequest, target: Target
    ) -> bool | Awaitable[bool]:
        """Whether the HTTP ``request`` may publish to ``target``; False answers 403."""
        return True

    def on_client_message(
        self, request: HTTPServerRequest, channel: Channel, payload: bytes
    ) -> bytes | Awaitable[bytes | None] | None:
        """Filter or transform a message a WebSocket client sent to ``channel``.

        Return the bytes to publish (``payload`` itself, or a transformed copy),
        None to drop it silently, or raise :class:`Reject` to close the client
        with 1008 and the reason.  ``request`` is the client's handshake.
        """
        return payload


async def resolve(result: T | Awaitable[T]) -> T:
    """The value of a hook call that may or may not be awaitable."""
    if inspect.isawaitable(result):
        return await result
    return result
