"""Admitting a subscriber: what the WebSocket and event-stream edges check before subscribing.

The channel's name (or a subtree's: ``users/`` is everything below it),
the request's origin, this process's capacity, its
token (when the mount point requires tokens), the application's hook
(``authorize_subscribe`` for a channel, ``authorize_subtree`` for a subtree:
:func:`ask_hooks`, which presence queries ask too), and the position to
resume from.  A client that
asks for positions without having one starts from the head, read *before*
subscribing: what is published from then on is its own, and resuming from
the head leaves no gap before the live subscription takes over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass

import tornado.web
from tornado.httputil import HTTPServerRequest

from ..brokers.base import BrokerUnavailable
from ..core.channels import Channel, InvalidChannel, Subtree, Target, parse_target
from ..core.frames import CLOSE_TOKEN_EXPIRED, Encoding
from ..core.grants import Claims
from ..core.publication import InvalidPosition, Position
from ..subscription import Subscription
from . import origins
from .context import MountContext
from .errors import ApiError, authorize, broker_unavailable, invalid_channel
from .hooks import Allow, ChannelHooks, Decision, Reject

log = logging.getLogger("tornado_channels.hooks")


@dataclass(frozen=True, slots=True)
class Admission:
    """An admitted subscriber: its subscription (not yet started), and its token's claims."""

    subscription: Subscription
    claims: Claims | None
    #: The hooks' :class:`Allow`, when they answered one (who, and for how long).
    allow: Allow | None = None
    #: Asks the hooks again (when the Allow expires).
    reauthorize: Callable[[], Awaitable[Allow | None]] | None = None


async def admit(
    request: HTTPServerRequest,
    path: str,
    *,
    since: str | None,
    encoding: Encoding,
    mount: MountContext,
    trusted: Collection[str] = (),
) -> Admission:
    """Admit ``request`` to ``mount``'s channel at ``path``; raise the ApiError that refuses it.

    ``trusted`` adds origins (a host application's own ``trusted_origins`` setting).
    """
    node, hooks, config, guard = mount.node, mount.hooks, mount.config, mount.guard
    try:
        channel: Target = parse_target(path)
    except InvalidChannel as exc:
        raise invalid_channel(exc) from None
    if isinstance(channel, Subtree):
        # Many channels in one stream: each message says where it went.
        if encoding is Encoding.ENVELOPE:
            encoding = Encoding.LABELLED
        elif encoding is Encoding.SSE:
            encoding = Encoding.SSE_LABELLED
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
    claims = guard.subscriber(request, channel, tokenless=hooks.authenticates)
    allow = await ask_hooks(hooks, request, channel)
    position: Position | None = None
    if since is not None:
        try:
            position = Position.parse(since)
        except InvalidPosition as exc:
            raise ApiError(400, "invalid_position", str(exc)) from None
    elif encoding is not Encoding.RAW:
        try:
            position = await node.head(channel)
        except BrokerUnavailable as exc:
            raise broker_unavailable(exc) from None
    presence = request.query_arguments.get("presence", [b""])[-1]
    if presence not in (b"", b"0", b"1"):
        raise ApiError(400, "invalid_presence", "presence must be 1 (joins and leaves) or 0")
    if presence == b"1" and encoding is Encoding.RAW:
        # A raw stream has no room for anything but the published payloads.
        raise ApiError(400, "invalid_presence", "?presence=1 needs ?positions=1")
    user = claims.subject if claims is not None else None
    if user is None and allow is not None:
        user = allow.user
    subscription = Subscription(
        node,
        channel,
        encoding,
        position,
        fresh=since is None,
        user=user,
        presence_events=presence == b"1",
    )
    return Admission(subscription, claims, allow, lambda: ask_hooks(hooks, request, channel))


async def ask_hooks(
    hooks: ChannelHooks, request: HTTPServerRequest, target: Target
) -> Allow | None:
    """Ask the application whether ``request`` may subscribe to ``target``; raise the refusal.

    A channel goes to ``authorize_subscribe``, a subtree to
    ``authorize_subtree`` (whose default refuses subtrees when only channels
    are decided: see hooks.py).  A hook that fails is the application's bug:
    logged here with its traceback, answered as a plain 500 that says
    nothing of it.  Returns the hook's :class:`Allow`, when it answered one.
    """
    decision: Decision | Awaitable[Decision]
    name = "authorize_subtree" if isinstance(target, Subtree) else "authorize_subscribe"
    try:
        if isinstance(target, Channel):
            decision = hooks.authorize_subscribe(request, target)
        else:
            decision = hooks.authorize_subtree(request, target)
        return await authorize(decision, f"subscribing to '{target}' is not allowed")
    except Reject as exc:
        # Raised by the call itself (a plain method), before authorize could see it.
        raise ApiError(403, "forbidden", exc.reason) from None
    except tornado.web.HTTPError:
        raise  # A refusal (ours, or one the hook chose to raise).
    except Exception:
        log.exception("the %s hook failed for '%s'", name, target)
        raise ApiError(
            500, "internal_error", "the server failed to authorize this request"
        ) from None


async def start(admission: Admission, leeway: float) -> Subscription:
    """Subscribe; raise the 503 when the broker cannot take the subscription.

    A subscription made with a token that expires is closed when it does
    (``exp`` plus the leeway) with 4001: the client gets a new token and
    resumes, losing nothing.
    """
    subscription = admission.subscription
    try:
        await subscription.start()
    except BrokerUnavailable as exc:
        raise broker_unavailable(exc) from None
    claims = admission.claims
    if claims is not None and claims.expires_at is not None:
        delay = claims.expires_at + leeway - time.time()
        subscription.close_at(delay, CLOSE_TOKEN_EXPIRED, "token expired")
    allow, ask = admission.allow, admission.reauthorize
    if allow is not None and allow.expires_in is not None and ask is not None:
        _reauthorize_in(subscription, allow.expires_in, ask)
    return subscription


# Re-authorizations under way: the loop keeps only weak references to tasks.
_asking: set[asyncio.Task[None]] = set()


def _reauthorize_in(
    subscription: Subscription, delay: float, ask: Callable[[], Awaitable[Allow | None]]
) -> None:
    """Ask the hooks again in ``delay`` seconds (an :class:`Allow`'s ``expires_in``)."""

    def due() -> None:
        task = asyncio.ensure_future(_reauthorize(subscription, ask))
        _asking.add(task)
        task.add_done_callback(_asking.discard)

    subscription.at(delay, due)


async def _reauthorize(
    subscription: Subscription, ask: Callable[[], Awaitable[Allow | None]]
) -> None:
    """An expired Allow asked again: a refusal, or no answer, closes with 4001 as a token's expiry.

    A backend that cannot answer never lets a subscription outlive its
    authorization: the client reconnects (and resumes) once it can.
    """
    try:
        allow = await ask()
    except tornado.web.HTTPError as exc:
        message = exc.message if isinstance(exc, ApiError) else "refused"
        subscription.close(CLOSE_TOKEN_EXPIRED, f"authorization expired: {message}"[:100])
        return
    if allow is not None and allow.expires_in is not None:
        _reauthorize_in(subscription, allow.expires_in, ask)
