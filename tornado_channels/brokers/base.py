"""The Broker interface: the transport every publish goes through.

A broker carries :class:`~tornado_channels.core.publication.Publication`
objects to every process that shares it, the publishing one included, and
hands each one it receives to its :class:`BrokerEvents` (the node).  Delivery
always comes back from the broker, so one code path serves one process and
many.  This module declares everything the node reads from a broker.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Protocol

from ..core.channels import Target
from ..core.idempotency import Idempotency
from ..core.presence import PresenceTally
from ..core.publication import Position, Publication, Receipt, Recovery
from .events import EventLog, MemoryEventLog
from .presence import LocalPresence, PresenceStore


class PublishError(Exception):
    """A publish that the broker did not accept."""


class BrokerUnavailable(PublishError):
    """The broker is not connected: nothing was published."""


class PublishOutcomeUnknown(PublishError):
    """The broker did not answer in time: the message may or may not be published.

    Retrying could deliver it twice, so it is not retried here; a retry with
    the same idempotency key is safe.
    """


class IdempotencyConflict(PublishError):
    """The idempotency key was already used to publish something else: nothing was published."""


class BrokerEvents(Protocol):
    """What a broker reports to the node that owns it."""

    def received(self, publication: Publication) -> None:
        """A publication arrived for this process's subscribers."""

    def subscription_lost(self, target: Target) -> None:
        """The broker could not keep ``target`` subscribed: tell its subscribers."""

    def broker_state_changed(self, connected: bool, partition: int | None = None) -> None:
        """The broker connected (again) or lost its connection.

        ``partition`` says which partition's connection changed, when the
        broker has one per partition (None: all of them).
        """


class Broker(abc.ABC):
    """Cross-process transport with per-channel interest.

    ``subscribe``/``unsubscribe`` are called once per local subscriber; a broker
    that filters by channel keeps its own reference counts.
    """

    #: Short name shown by health checks and logs.
    kind: str = "broker"
    #: History partitions (see core/partitions.py): 1 unless sharded.
    partitions: int = 1

    @property
    def reconnects(self) -> int:
        """Times the broker reconnected after losing its connection (0 for one that cannot)."""
        return 0

    @property
    def repairs(self) -> int:
        """Subscriptions a self-check found wrong in the transport and repaired."""
        return 0

    def describe(self) -> str:
        """What this broker is and where, for logs (no password)."""
        return self.kind

    def presence(self, tally: PresenceTally) -> PresenceStore:
        """Where the presence of every process sharing this broker is kept and read.

        This process's ``tally`` alone, unless the broker spans processes.
        """
        return LocalPresence(tally)

    def event_log(self, presence: PresenceStore, max_backlog: int) -> EventLog:
        """Where lifecycle events wait for the backend (see events.py), ``presence``'s included.

        This process's queue, unless the broker spans processes.
        """
        log = MemoryEventLog(max_backlog)
        presence.events = log
        return log

    @abc.abstractmethod
    async def start(self, events: BrokerEvents) -> None:
        """Begin delivering to ``events``.

        Returns without waiting for a connection: a broker that cannot connect
        yet keeps trying.
        """

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop delivering and release every connection."""

    @property
    @abc.abstractmethod
    def connected(self) -> bool:
        """Whether publishes can be accepted and deliveries received now."""

    @abc.abstractmethod
    async def publish(
        self, publication: Publication, idempotency: Idempotency | None = None
    ) -> Receipt:
        """Publish and record in history; return its position once accepted.

        With ``idempotency``, a key the broker remembers answers with the
        positions it published first, and publishes nothing (raising
        :class:`IdempotencyConflict` if it published something else).
        Raise :class:`BrokerUnavailable` or :class:`PublishOutcomeUnknown` otherwise.
        """

    @abc.abstractmethod
    async def publish_many(
        self, publications: Sequence[Publication], idempotency: Idempotency | None = None
    ) -> Receipt:
        """Publish several, in order, as one operation; return their positions.

        All or none (per partition, when there are several): raise
        :class:`BrokerUnavailable` when none was published, or
        :class:`PublishOutcomeUnknown` when it cannot be known.  ``idempotency``
        as for :meth:`publish`.
        """

    @abc.abstractmethod
    async def head(self, target: Target) -> Position:
        """The latest position of ``target``'s partition (seq 0 before any).

        Where a new subscriber of ``target`` (a channel, or a subtree) starts.
        """

    @abc.abstractmethod
    async def recover(self, target: Target, since: Position) -> Recovery:
        """What reached ``target`` after ``since``.

        For a channel: what was published to it and to the subtrees above it.
        For a subtree: also everything published to any channel or subtree
        below it, each message once.
        """

    @abc.abstractmethod
    def subscribe(self, target: Target) -> None:
        """Receive publications for ``target``: a channel and the subtrees above it, or a subtree.

        Counted per call, and never fails: while disconnected it takes effect
        on (re)connection.  :meth:`confirm` waits until it is in effect.
        """

    @abc.abstractmethod
    async def confirm(self, target: Target) -> None:
        """Return once the subscriptions of ``target`` are in effect.

        Raises :class:`BrokerUnavailable` if they cannot be now; the caller
        then undoes its :meth:`subscribe` with :meth:`unsubscribe`.
        """

    @abc.abstractmethod
    def unsubscribe(self, target: Target) -> None:
        """Undo one :meth:`subscribe` of ``target``."""
