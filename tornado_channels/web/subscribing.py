"""What the WebSocket and server-sent-events edges share.

Admitting a subscriber (name, origin, capacity, hooks, resume position) and
resuming one: live frames are held from the moment of subscribing, the
history after the client's position is sent, then the held frames, skipping
what the history already sent, so the seam has no gap and no duplicate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..brokers.base import BrokerUnavailable, Recovered
from ..core.channels import Channel, InvalidChannel, parse_channel
from ..core.frames import CLOSE_SLOW_CONSUMER, encode_for, outcome_for
from ..core.history import InvalidPosition, Position
from ..node import Node
from ..web.config import ChannelConfig
from ..web.hooks import ChannelHooks
from ..web.pages import (
    ApiError,
    JSONErrorsMixin,
    authorize,
    broker_unavailable,
    invalid_channel,
    same_origin,
)


class SubscriberMixin(JSONErrorsMixin):
    """A request handler that becomes a subscriber of one channel."""

    node: Node
    hooks: ChannelHooks
    config: ChannelConfig
    channel: Channel
    #: How this subscriber takes messages (see frames.encode_for).
    encoding = "raw"

    def initialize(self, node: Node, hooks: ChannelHooks, config: ChannelConfig) -> None:
        """Take the shared node, hooks and config from the route table."""
        self.node = node
        self.hooks = hooks
        self.config = config
        self._since: Position | None = None
        # Live frames that arrive while a recovery is being sent: (seq, frame).
        self._held: list[tuple[int, bytes]] | None = None
        self._held_bytes = 0

    async def admit(self, path: str, since: str | None) -> Channel:
        """Check everything a subscription needs before it is made; raise ApiError if not."""
        try:
            channel = parse_channel(path)
        except InvalidChannel as exc:
            raise invalid_channel(exc) from None
        origin = self.request.headers.get("Origin")
        if origin is not None and not self.origin_allowed(origin):
            raise ApiError(403, "forbidden_origin", f"connections from {origin} are not allowed")
        cap = self.config.max_connections
        if cap and len(self.node.hub) >= cap:
            raise ApiError(
                503,
                "too_many_connections",
                f"this process is at its limit of {cap} subscribers",
                {"Retry-After": "1"},
            )
        await authorize(
            self.hooks.authorize_subscribe(self.request, channel),
            f"subscribing to '{channel}' is not allowed",
        )
        if since is not None:
            try:
                self._since = Position.parse(since)
            except InvalidPosition as exc:
                raise ApiError(400, "invalid_position", str(exc)) from None
        elif self.encoding != "raw":
            # A client that wants positions but has none starts from the head
            # (read before subscribing): what is published from now on is
            # its, and resuming from the head leaves no gap before the live
            # subscription takes over.
            try:
                self._since = await self.node.head()
            except BrokerUnavailable as exc:
                raise broker_unavailable(exc) from None
        if self._since is not None:
            # Hold live frames from the moment of subscribing: none is lost
            # between the history read and the live stream.
            self._held = []
        self.channel = channel
        return channel

    def origin_allowed(self, origin: str) -> bool:
        """Same origin (as Tornado compares them), or a trusted one (ours or the app's)."""
        if same_origin(origin, self.request.headers):
            return True
        return origin in self.config.trusted_origins or origin in self.settings.get(
            "trusted_origins", ()
        )

    @property
    def recovering(self) -> bool:
        """Whether a recovery is being sent (live frames are held meanwhile)."""
        return self._held is not None

    def hold(self, frame: bytes, seq: int) -> bool:
        """Keep a live frame back while recovering; True if it was held."""
        if self._held is None:
            return False
        self._held.append((seq, frame))
        self._held_bytes += len(frame)
        if self._held_bytes > self.node.hub.max_buffered_bytes:
            # Held during recovery counts like unread: the same bound.
            self._held = None
            self.close(CLOSE_SLOW_CONSUMER, "slow consumer")
        return True

    async def resume(self) -> None:
        """Send what was missed since the client's position, the outcome, then the held frames."""
        since = self._since
        if since is None:
            return
        try:
            recovered = await self.node.recover(self.channel, since)
        except BrokerUnavailable as exc:
            recovered = Recovered([], False, f"broker unavailable: {exc}")
        # Publications the node has received but not yet delivered (it
        # delivers once per pass of the event loop) may be in the history just
        # read: deliver them now, into the held frames, so the seam below
        # sees them and nothing is sent twice.
        self.node.flush()
        last = since.seq
        for publication in recovered.publications:
            position = publication.position
            if position is not None and position.seq > last:
                self.write_frame(encode_for(self.encoding, str(position), publication.payload))
                last = position.seq
        if recovered.complete:
            resume_from = Position(since.epoch, last)
        else:
            # The client's position is useless now (what it missed is lost,
            # and it is told so). Nothing was replayed, so every held frame is
            # new to it, whatever its number (a new epoch starts again at 1):
            # release them all, and say to continue from just before the
            # first of them, or from the head when none is held.
            last = -1
            try:
                head = await self.node.head()
            except BrokerUnavailable:
                head = since
            held = self._held or []
            resume_from = Position(head.epoch, held[0][0] - 1) if held else head
        outcome: dict[str, object] = {
            "recovered": recovered.complete,
            "missed": len(recovered.publications),
            "position": str(resume_from),
        }
        if not recovered.complete:
            outcome["reason"] = recovered.reason
        self.write_frame(outcome_for(self.encoding, **outcome))
        held, self._held = self._held or [], None
        for seq, frame in held:
            # The seam: what the history already sent is not sent twice.
            if seq > last:
                self.write_frame(frame)

    def send_frame(self, frame: bytes, seq: int) -> None:
        """Write a pre-encoded frame of message ``seq`` (held back while recovering)."""
        if not self.hold(frame, seq):
            self.write_frame(frame)

    def write_frame(self, frame: bytes) -> None:
        """Write an encoded frame to the client now (each edge knows how)."""
        raise NotImplementedError

    if TYPE_CHECKING:
        # Each edge has its own (WebSocketHandler's, for one): declared here
        # for the checker only, so no stub can shadow the real one.
        def close(self, code: int | None = None, reason: str | None = None) -> None:
            """Close the subscriber with a WebSocket close code."""
