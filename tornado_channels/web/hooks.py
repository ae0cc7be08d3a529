"""Hooks: where a host application puts its own logic.

Subclass :class:`ChannelHooks`, override what you need, and pass an instance
to :func:`tornado_channels.channel_routes` (or ``make_app``).  Every hook may
be a plain method or a coroutine.

Subscribing to one channel asks :meth:`ChannelHooks.authorize_subscribe`;
subscribing to a subtree (``ws://host/users/``, ``ws://host/``: everything
below it) asks :meth:`ChannelHooks.authorize_subtree` instead.  An
application that decides channels but not subtrees has its subtree
subscriptions refused, never let past its channel rules.

An ``authorize_*`` subscribe hook may answer :class:`Allow` instead of
True: who the subscriber is (presence lists it) and for how long the answer
holds; then it is asked again, and a refusal closes the subscription with
4001.  :class:`~tornado_channels.web.backend.BackendHooks` asks a backend
over HTTP (``--auth-url``, ``--publish-url``: docs/hooks.md).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from tornado.httputil import HTTPServerRequest

from ..core.channels import Channel, Subtree, Target

T = TypeVar("T")


class Reject(Exception):
    """Raised by a hook to refuse, with a reason shown to the client.

    From :meth:`ChannelHooks.on_client_message` it closes the WebSocket with
    1008; from an ``authorize_*`` hook it answers 403.
    """

    def __init__(self, reason: str = "rejected") -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Allow:
    """A subscribe hook's yes, saying who subscribes and for how long the yes holds.

    ``user`` is the subscription's user where a token's ``sub`` would be
    (presence lists it; a token's ``sub`` wins when both exist).
    ``expires_in`` (seconds), when set, has the hook asked again then: a
    refusal (or a failure) closes the subscription with 4001.
    """

    user: str | None = None
    expires_in: float | None = None

    def __bool__(self) -> bool:
        return True  # An Allow allows, wherever a plain True would.


#: What a subscribe hook answers: True or an :class:`Allow` lets in, False refuses.
Decision = bool | Allow


class ChannelHooks:
    """Default hooks: everyone may subscribe and publish; messages pass unchanged."""

    #: Whether these hooks decide subscribers that carry no token: where tokens
    #: are on, such a request is then asked of them instead of refused ``401
    #: token_required`` (and a presence query without credentials too).  A
    #: valid token still decides by its grants.
    authenticates: bool = False

    def authorize_subscribe(
        self, request: HTTPServerRequest, channel: Channel
    ) -> Decision | Awaitable[Decision]:
        """Whether ``request`` may subscribe to the one ``channel`` (``users/1``).

        Asked for WebSocket handshakes and event streams (before the upgrade),
        and for presence queries that no publish key answers: False (or
        :class:`Reject`) answers 403; an :class:`~tornado.web.HTTPError`
        raised (such as an ``ApiError``) answers itself.  :class:`Allow`
        allows and names the user and how long that holds.  Subtrees go to
        :meth:`authorize_subtree`.
        """
        return True

    def authorize_subtree(
        self, request: HTTPServerRequest, subtree: Subtree
    ) -> Decision | Awaitable[Decision]:
        """Whether ``request`` may subscribe to every channel below ``subtree`` (``users/``, ``/``).

        Asked where :meth:`authorize_subscribe` is asked for a channel.  By
        default it allows what :meth:`authorize_subscribe` allows when that is
        not overridden either (everyone, everywhere), and refuses every
        subtree when it is: rules written for channels (``channel.name``)
        cannot see what a subtree reaches, and a subscriber of ``/`` would
        hear all of them.  Override it to allow subtrees; ``subtree.overlaps(
        "private/")`` and ``subtree.within("public/")`` say what it reaches.
        """
        if _overridden(self, "authorize_subscribe"):
            raise Reject(
                f"subtree subscriptions ('{subtree}') are not enabled here: this application "
                "decides subscriptions channel by channel, and subtrees need an opt-in "
                "(an authorize_subtree hook)"
            )
        return True

    def authorize_publish(
        self, request: HTTPServerRequest, target: Target
    ) -> bool | Awaitable[bool]:
        """Whether the HTTP ``request`` may publish to ``target``; False answers 403."""
        return True

    def on_publish(
        self, request: HTTPServerRequest, target: Target, payload: bytes
    ) -> bytes | Awaitable[bytes | None] | None:
        """Filter or transform a message POSTed without the publish key (``POST /<channel>``).

        Return the bytes to publish, None to drop it (the POST is answered
        ``202 {"published": false, "dropped": true}``), or raise
        :class:`Reject` (403) or an ``ApiError`` (its own answer).  Where
        this is overridden, ``POST /_/publish`` without the key is refused
        (403 ``publish_key_required``): a batch is all or none.
        """
        return payload

    def on_client_message(
        self, request: HTTPServerRequest, channel: Channel, payload: bytes
    ) -> bytes | Awaitable[bytes | None] | None:
        """Filter or transform a message a WebSocket client sent to ``channel``.

        Return the bytes to publish (``payload`` itself, or a transformed copy),
        None to drop it silently, or raise :class:`Reject` to close the client
        with 1008 and the reason.  ``request`` is the client's handshake.
        """
        return payload


def _overridden(hooks: ChannelHooks, name: str) -> bool:
    """Whether ``hooks``' class replaces the default hook ``name``."""
    return getattr(type(hooks), name) is not getattr(ChannelHooks, name)


async def resolve(result: T | Awaitable[T]) -> T:
    """The value of a hook call that may or may not be awaitable."""
    if inspect.isawaitable(result):
        return await result
    return result
