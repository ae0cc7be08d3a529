"""A subscription: one client on one channel (or a subtree), as the hub holds it.

The hub never sees an HTTP handler.  It holds :class:`Subscription` objects,
each of which writes frames to a :class:`Transport`: a WebSocket connection
or a server-sent-events stream.  A subscription is made before its transport
exists (the subscription must be in effect before the WebSocket handshake is
answered), so what arrives in between waits here and goes out first once the
transport is attached.  Resuming from a position is the seam of
:mod:`.core.resume`; this class does the I/O around it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from .brokers.base import BrokerUnavailable
from .brokers.events import CONNECT, DISCONNECT
from .core.channels import Target
from .core.deflate import Deflate
from .core.frames import CLOSE_SLOW_CONSUMER, Encoding
from .core.partitions import one_sequence
from .core.presence import presence_name
from .core.publication import Position, Recovery
from .core.resume import Overflow, Resume
from .node import Node

log = logging.getLogger("tornado_channels.subscription")


class Transport(Protocol):
    """Where a subscription's frames go (a WebSocket connection, an event stream)."""

    def send(self, frame: bytes) -> None:
        """Write an already-encoded frame; never blocks."""

    def buffered(self) -> int:
        """Bytes written that the peer has not yet taken."""

    def close(self, code: int | None, reason: str | None) -> None:
        """End the connection with a WebSocket close code and reason."""

    def fail(self, code: int, reason: str) -> None:
        """End the connection at once for a protocol error (no waiting for the peer)."""


class Subscription:
    """One client's subscription to a channel or a subtree, in the encoding it takes messages in.

    ``since`` (a position) makes it resume: live messages are held from the
    moment it subscribes until :meth:`resume` has sent what was missed.
    """

    __slots__ = (
        "_closing",
        "_connected",
        "_deadline",
        "_over",
        "_pending",
        "_recheck",
        "_resume",
        "_transport",
        "deflate",
        "encoding",
        "node",
        "presence_events",
        "target",
        "user",
    )

    def __init__(
        self,
        node: Node,
        target: Target,
        encoding: Encoding,
        since: Position | None = None,
        *,
        fresh: bool = False,
        user: str | None = None,
        presence_events: bool = False,
    ) -> None:
        self.node = node
        #: Who subscribes (a token's ``sub``), as presence lists it; None when unknown.
        self.user = user
        #: Whether it is told of joins and leaves on its target (``?presence=1``).
        self.presence_events = presence_events
        self.target = target
        self.encoding = encoding
        #: How messages to this client are compressed: set from its handshake, before it starts.
        self.deflate: Deflate | None = None
        self._resume = (
            Resume(since, node.hub.max_buffered_bytes, fresh=fresh) if since is not None else None
        )
        self._transport: Transport | None = None
        # Frames written before the transport exists, and a close asked for then.
        self._pending: list[bytes] | None = []
        self._closing: tuple[int | None, str | None] | None = None
        self._deadline: asyncio.TimerHandle | None = None
        # A re-authorization's timer (see at), apart from a token's deadline.
        self._recheck: asyncio.TimerHandle | None = None
        # Ended or closed: no timer may be set any more.
        self._over = False
        # Whether its connect event was recorded and its disconnect is still due.
        self._connected = False

    async def start(self) -> None:
        """Subscribe; return once the broker delivers to it (raise BrokerUnavailable if not)."""
        events = self.node.events
        if events is not None:
            # One connection, one subscription: connected just before it subscribes.
            self._connected = True
            events.emit(CONNECT, presence_name(self.target), self.user)
        try:
            await self.node.subscribe(
                self.target, self, user=self.user, presence_events=self.presence_events
            )
        except BaseException:
            self._disconnected()
            raise

    def _disconnected(self) -> None:
        """Record the disconnect, once, after the unsubscribe."""
        events = self.node.events
        if self._connected and events is not None:
            self._connected = False
            events.emit(DISCONNECT, presence_name(self.target), self.user)

    def attach(self, transport: Transport) -> None:
        """The connection exists: write what arrived meanwhile (or the close asked for)."""
        self._transport = transport
        pending, self._pending = self._pending or [], None
        for frame in pending:
            transport.send(frame)
        if self._closing is not None:
            self.close(*self._closing)

    def end(self) -> None:
        """The connection is gone (or never came): leave the target.  Safe to call again."""
        self._over = True
        self._cancel_deadline()
        self.node.unsubscribe(self.target, self)
        self._disconnected()
        self._transport = None

    def close_at(self, delay: float, code: int, reason: str) -> None:
        """Close in ``delay`` seconds with ``code`` (a token's expiry), unless it ends first."""
        if self._deadline is not None:
            self._deadline.cancel()
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(max(delay, 0.0), self.close, code, reason)

    def at(self, delay: float, callback: Callable[[], object]) -> None:
        """Call ``callback`` in ``delay`` seconds (a re-authorization), unless this ends first.

        One such timer at a time (a new one replaces the last), apart from
        :meth:`close_at`'s, which it never moves.  Once ended or closed,
        nothing is scheduled (a re-authorization that answers late).
        """
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None
        if not self._over:
            loop = asyncio.get_running_loop()
            self._recheck = loop.call_later(max(delay, 0.0), callback)

    def _cancel_deadline(self) -> None:
        """Cancel both timers: the subscription ends or closes."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._recheck is not None:
            self._recheck.cancel()
            self._recheck = None

    async def resume(self) -> None:
        """Send what was missed since the client's position, the outcome, then the live frames."""
        resume = self._resume
        if resume is None:
            return
        try:
            recovery = await self.node.recover(self.target, resume.since)
        except BrokerUnavailable as exc:
            recovery = Recovery([], False, f"broker unavailable: {exc}")
        head: Position | None = None
        if not recovery.complete:
            try:
                head = await self.node.head(self.target)
            except BrokerUnavailable:
                head = None
        if not resume.holding:
            return  # Closed meanwhile (it fell behind while recovering).
        frames = resume.seam(
            recovery,
            head,
            self.encoding,
            one_sequence=one_sequence(self.target, self.node.broker.partitions),
        )
        if not resume.active:
            self._resume = None  # Nothing guarded: straight to the transport from now on.
        for frame in frames:
            self.write(frame)

    # What the hub calls (hub.Subscriber)

    @property
    def recovering(self) -> bool:
        """Whether live frames are held or checked against the seam (each needs its number)."""
        return self._resume is not None

    def send_frame(self, frame: bytes, seq: int) -> None:
        """Write a frame of message ``seq`` (held back while recovering, dropped below the seam)."""
        resume = self._resume
        if resume is not None:
            try:
                if resume.take(seq, frame):
                    return
            except Overflow:
                # Held during recovery counts like unread: the same bound.
                self.close(CLOSE_SLOW_CONSUMER, "slow consumer")
                return
            if not resume.active:
                self._resume = None  # The seam is behind it: the hub's hot path from now on.
        self.write(frame)

    def buffered_bytes(self) -> int:
        """Bytes written to the client that it has not yet taken."""
        return self._transport.buffered() if self._transport is not None else 0

    def offer(self, frame: bytes, seq: int, limit: int) -> bool:
        """:meth:`send_frame` unless more than ``limit`` bytes are unread (False then)."""
        transport = self._transport
        if transport is not None and self._resume is None and self._pending is None:
            # Live, nothing held: straight to the transport (the hub's hot path).
            if transport.buffered() > limit:
                return False
            transport.send(frame)
            return True
        if self.buffered_bytes() > limit:
            return False
        self.send_frame(frame, seq)
        return True

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        """Close the client's connection and leave the channel (or subtree) at once.

        Before the transport exists, the close is made as soon as it does.
        """
        self._cancel_deadline()
        transport = self._transport
        if transport is None:
            if self._pending is not None:
                self._closing = (code, reason)
            return
        self._over = True
        transport.close(code, reason)
        self.node.unsubscribe(self.target, self)

    def fail(self, code: int, reason: str) -> None:
        """End the connection for a protocol error, after what the node already received."""
        # So a client's own message, published just before its bad frame,
        # reaches it before the close (the embedded broker delivers at once).
        self.node.flush()
        if self._transport is not None:
            self._transport.fail(code, reason)

    def write(self, frame: bytes) -> None:
        """Write a frame now (or, before the transport exists, as soon as it does)."""
        if self._pending is not None:
            self._pending.append(frame)
        elif self._transport is not None:
            self._transport.send(frame)
