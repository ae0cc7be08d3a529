"""Where a broker keeps presence: this process's alone, or every process's added up.

The node keeps its :class:`~tornado_channels.core.presence.PresenceTally`
and tells the store when it changed; the store answers presence queries.
:class:`LocalPresence` (the memory broker's) reads the tally itself; a
broker shared by processes publishes each one's tally and sums them (see
redis_presence.py).
"""

from __future__ import annotations

import abc
from collections.abc import Callable

from ..core.channels import Subtree, Target
from ..core.presence import (
    ChannelPresence,
    PresenceTally,
    SubtreePresence,
    prefix_of,
    presence_name,
)
from .events import EventLog

#: Told of a join or leave: the name, "join" or "leave", the user.
Listener = Callable[[str, str, str], None]


class PresenceStore(abc.ABC):
    """Presence for every process that shares a broker.

    Joins and leaves (a user's first subscription to a name on the whole
    deployment, or their last one gone) go to :attr:`listener` for the names
    :meth:`watch`-ed: the node's, which hands them to the subscribers that
    asked for them.
    """

    def __init__(self, tally: PresenceTally) -> None:
        self.tally = tally
        self.listener: Listener | None = None
        #: Where joins and leaves are also written as lifecycle events, when they are.
        self.events: EventLog | None = None

    def notify(self, name: str, kind: str, user: str) -> None:
        """Hand a join or leave to the listener."""
        if self.listener is not None:
            self.listener(name, kind, user)

    @abc.abstractmethod
    def watch(self, name: str) -> None:
        """Receive joins and leaves on ``name`` (counted per call)."""

    @abc.abstractmethod
    async def confirm_watch(self, name: str) -> None:
        """Return once joins and leaves on ``name`` arrive; raise BrokerUnavailable if not now."""

    @abc.abstractmethod
    def unwatch(self, name: str) -> None:
        """Undo one :meth:`watch`."""

    @abc.abstractmethod
    def moved(self, name: str, kind: str, user: str) -> None:
        """``user`` joined or left ``name`` in this process's tally (its own view only)."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Begin publishing this process's tally."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Withdraw this process's tally, so it stops counting at once."""

    @abc.abstractmethod
    def changed(self) -> None:
        """The tally changed: publish it soon (batched, never one write per subscription)."""

    @abc.abstractmethod
    async def channel(self, target: Target) -> ChannelPresence:
        """Subscriptions to exactly ``target`` (a channel, or a subtree's own subscribers)."""

    @abc.abstractmethod
    async def below(self, subtree: Subtree, cursor: str | None, limit: int) -> SubtreePresence:
        """Subscriptions at and below ``subtree``: their total, and a page of them by name."""


class LocalPresence(PresenceStore):
    """Presence of one process: the memory broker's, exact at every moment."""

    async def start(self) -> None:
        """Nothing to publish: the tally is read where it is."""

    async def stop(self) -> None:
        """Nothing to withdraw."""

    def watch(self, name: str) -> None:
        """Nothing to subscribe to: every join and leave happens here."""

    async def confirm_watch(self, name: str) -> None:
        """In effect at once."""

    def unwatch(self, name: str) -> None:
        """Nothing to undo."""

    def moved(self, name: str, kind: str, user: str) -> None:
        """One process is the whole deployment: its view is the answer."""
        if self.events is not None:
            self.events.emit(kind, name, user)
        self.notify(name, kind, user)

    def changed(self) -> None:
        """Nothing to publish: queries read the tally as it is now.

        The changes are taken all the same: nobody else takes them, and a
        name left in them would be kept for every channel ever subscribed to.
        """
        self.tally.take_changes()

    async def channel(self, target: Target) -> ChannelPresence:
        """Read from the tally."""
        return self.tally.channel(presence_name(target))

    async def below(self, subtree: Subtree, cursor: str | None, limit: int) -> SubtreePresence:
        """Read from the tally."""
        return self.tally.below(prefix_of(subtree), cursor, limit)


__all__ = ["Listener", "LocalPresence", "PresenceStore"]
