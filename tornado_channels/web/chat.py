"""What a WebSocket client sends: published to its own channel, in order, within its rate.

:class:`Chat` is what a :class:`~.connection.WebSocketConnection` reports to.
It spends the client's frame budget (``--client-rate``/``--client-burst``,
counting every frame), runs each message through the ``on_client_message``
hook, publishes the messages one at a time in the order they came, and
pauses reading while too many wait (so a burst costs the client, not the
server's memory).  A protocol error fails the connection only once the
messages before the bad frame are published, so the client still gets its
own message back first.

A client message is a publish, so it needs what a POST to its channel
needs: nothing on a server with no credentials configured; where tokens are
on, a token granting the channel for publishing; where only a publish key is
set, the key on the handshake (``Authorization: Bearer <key>``: a backend's
client; browsers cannot send it, so their messages close the connection).
``--read-only`` prefixes are closed to every client, whatever it carries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import cast

from tornado.httputil import HTTPServerRequest

from ..brokers.base import PublishError
from ..core.channels import Channel
from ..core.frames import CLOSE_INTERNAL_ERROR, CLOSE_POLICY_VIOLATION, CLOSE_TRY_AGAIN_LATER
from ..core.grants import Claims
from ..core.ratelimit import TokenBucket
from ..subscription import Subscription
from .connection import WebSocketConnection
from .context import MountContext
from .hooks import Reject, resolve
from .tokens import carries_key

log = logging.getLogger("tornado_channels.websocket")

#: Client messages waiting to be published past which reading pauses.
INBOX_LIMIT = 64


class Chat:
    """One WebSocket client's side of the conversation (a ``ConnectionOwner``)."""

    def __init__(
        self,
        subscription: Subscription,
        request: HTTPServerRequest,
        mount: MountContext,
        claims: Claims | None,
    ) -> None:
        self.subscription = subscription
        self.request = request
        self.mount = mount
        #: The client's token's claims (None without one): what it may publish to.
        self.claims = claims
        #: Whether the handshake carried the publish key: such a client publishes anywhere.
        self.keyed = carries_key(request.headers, mount.config.publish_key)
        self.connection: WebSocketConnection | None = None
        config = mount.config
        self._budget = TokenBucket(config.client_rate, config.client_burst, time.monotonic())
        # Client messages waiting to be published, one at a time, in order.
        self._inbox: list[bytes] = []
        self._publisher: asyncio.Task[None] | None = None
        self._paused = False
        # A protocol error waiting for the messages before it to be published.
        self._fail_after: tuple[int, str] | None = None

    # From the connection (see connection.ConnectionOwner)

    def opened(self) -> None:
        """The 101 is written: the subscription writes to this connection from now on."""
        assert self.connection is not None
        self.subscription.attach(self.connection)

    def frames_received(self, count: int) -> None:
        """Spend ``count`` frames of the client's budget; past its rate and burst, close 1008.

        Data, continuation and control frames alike: a flood of tiny
        fragments or of pings costs the client as much as one of messages.
        """
        now = time.monotonic()
        for _ in range(count):
            if not self._budget.take(now):
                self.subscription.close(CLOSE_POLICY_VIOLATION, "rate limit exceeded")
                return

    def message_received(self, payload: bytes) -> None:
        """Queue the client's message for publishing (in order, one at a time)."""
        self._inbox.append(payload)
        if len(self._inbox) >= INBOX_LIMIT:
            self._reading(False)
        if self._publisher is None:
            self._publisher = asyncio.ensure_future(self._publish_inbox())
            self._publisher.add_done_callback(self._published)

    def protocol_error(self, code: int, reason: str) -> None:
        """Fail the connection, once the messages that came before the bad frame are published."""
        if self._publisher is None:
            self.subscription.fail(code, reason)
        else:
            self._fail_after = (code, reason)

    def closed(self) -> None:
        """The connection is gone: leave the channel."""
        self._inbox.clear()
        self.subscription.end()
        self.connection = None  # No cycle left for the collector to find.

    # Publishing

    async def _publish_inbox(self) -> None:
        while self._inbox:
            await self._publish(self._inbox.pop(0))
            if len(self._inbox) < INBOX_LIMIT // 2:
                self._reading(True)

    def _reading(self, on: bool) -> None:
        """Pause reading while too many client messages wait to be published; resume after."""
        connection = self.connection
        if on == self._paused and connection is not None and connection.transport is not None:
            self._paused = not on
            transport = cast(asyncio.ReadTransport, connection.transport)
            if on:
                transport.resume_reading()
            else:
                transport.pause_reading()

    def _published(self, task: asyncio.Task[None]) -> None:
        self._publisher = None
        if not task.cancelled() and task.exception() is not None:
            log.error("publishing a client's message failed", exc_info=task.exception())
            self.subscription.close(CLOSE_INTERNAL_ERROR, "internal error")
        if self._fail_after is not None:
            self.subscription.fail(*self._fail_after)

    def _refusal(self, channel: Channel) -> str | None:
        """Why this client may not publish to ``channel`` (the close reason), or None if it may."""
        if self.keyed:
            return None
        if self.mount.guard.enabled:
            if self.mount.guard.may_publish(self.claims, channel):
                return None
            return "no token grants publishing here"
        if self.mount.config.publish_key is not None:
            return "publishing needs the publish key"
        return None

    async def _publish(self, raw: bytes) -> None:
        """Publish one client message to its channel, through the message hook."""
        connection = self.connection
        if connection is None or connection.close_sent or connection.transport is None:
            return  # Already closing (e.g. over its rate): publish nothing more.
        subscription = self.subscription
        channel = subscription.target
        if not isinstance(channel, Channel):
            # A subtree names no one channel to publish to.
            subscription.close(
                CLOSE_POLICY_VIOLATION, "a subtree's subscribers cannot publish: use a channel"
            )
            return
        if not self.mount.config.client_may_publish(channel.name):
            subscription.close(
                CLOSE_POLICY_VIOLATION, "publishing here is disabled for WebSocket clients"
            )
            return
        refusal = self._refusal(channel)
        if refusal is not None:
            subscription.close(CLOSE_POLICY_VIOLATION, refusal)
            return
        try:
            payload = await resolve(self.mount.hooks.on_client_message(self.request, channel, raw))
        except Reject as exc:
            subscription.close(CLOSE_POLICY_VIOLATION, exc.reason[:100])
            return
        if payload is None:
            return
        try:
            await subscription.node.publish(channel, payload)
        except PublishError:
            subscription.close(CLOSE_TRY_AGAIN_LATER, "broker unavailable: message not published")
