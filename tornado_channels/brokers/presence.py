"""Where a broker keeps presence: this process's alone, or every process's added up.

The node keeps its :class:`~tornado_channels.core.presence.PresenceTally`
and tells the store when it changed; the store answers presence queries.
:class:`LocalPresence` (the memory broker's) reads the tally itself; a
broker shared by processes publishes each one's tally and sums them (see
redis_presence.py).
"""

from __future__ import annotations

import abc

from ..core.channels import Subtree, Target
from ..core.presence import (
    ChannelPresence,
    PresenceTally,
    SubtreePresence,
    prefix_of,
    presence_name,
)


class PresenceStore(abc.ABC):
    """Presence for every process that shares a broker."""

    def __init__(self, tally: PresenceTally) -> None:
        self.tally = tally

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


__all__ = ["LocalPresence", "PresenceStore"]
