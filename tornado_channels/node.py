"""The node: wires the hub (local subscribers) to a broker (transport).

Publish always goes through the broker and delivery always comes back from it,
so a single process on the memory broker and many processes on Redis take the
same path.  The node keeps plain counters and a latency histogram; nothing on
its paths calls a metrics library (web/metrics.py renders them when scraped).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from .brokers.base import Broker, BrokerUnavailable, PublishOutcomeUnknown
from .brokers.events import SUBSCRIBE, UNSUBSCRIBE, EventLog
from .brokers.memory import MemoryBroker
from .core.channels import Target
from .core.frames import CLOSE_GOING_AWAY, CLOSE_TRY_AGAIN_LATER, Encoding, presence_event_for
from .core.idempotency import idempotency_for
from .core.latency import LatencyHistogram
from .core.presence import JOIN, LEAVE, PresenceTally, presence_name
from .core.publication import Position, Publication, Receipt, Recovery
from .core.resume import UNNUMBERED
from .hub import MAX_BUFFERED_BYTES, Hub, Subscriber

log = logging.getLogger("tornado_channels.node")


#: Publish latency buckets, in seconds: a local Redis answers in well under a
#: millisecond, a loaded or remote one in tens of milliseconds.
PUBLISH_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Node:
    """One process's view of the channels: its subscribers and its broker.

    A host application creates one node, starts it, and shares it between
    every handler that serves channels (see :func:`tornado_channels.channel_routes`).
    """

    def __init__(
        self, broker: Broker | None = None, *, max_buffered_bytes: int = MAX_BUFFERED_BYTES
    ) -> None:
        self.broker: Broker = broker if broker is not None else MemoryBroker()
        self.hub = Hub(max_buffered_bytes=max_buffered_bytes, partitions=self.broker.partitions)
        #: This process's subscriptions per channel and subtree, and by whom.
        self.tally = PresenceTally()
        #: Presence of every process sharing the broker (see brokers/presence.py).
        self.presence = self.broker.presence(self.tally)
        # Subscriber -> the user it was counted under (tokens' ``sub``).
        self._users: dict[Subscriber, str | None] = {}
        # Name -> the subscribers told of its joins and leaves (``?presence=1``).
        self._presence_watchers: dict[str, set[Subscriber]] = {}
        self.presence.listener = self.presence_moved
        #: Where lifecycle events go, once :meth:`record_events` is called (None: nowhere).
        self.events: EventLog | None = None
        #: Publications accepted by the broker from this process.
        self.published = 0
        #: Publishes the broker refused, by reason (the ``reason`` metric label).
        self.publish_failures = {"unavailable": 0, "outcome_unknown": 0}
        #: Seconds from publish until the broker accepted it (successful publishes).
        self.publish_latency = LatencyHistogram(PUBLISH_BUCKETS)
        self._stopping = False
        # Set whenever the last local subscriber leaves; drain() waits on it.
        self._emptied = asyncio.Event()
        # Set while the broker is connected; wait_connected() waits on it.
        self._connected = asyncio.Event()
        # Publications received in this pass of the event loop, delivered
        # together at the start of the next (see received()).
        self._pending: list[Publication] = []
        # The loop it runs on, once started (asking for it costs a system call).
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def connected(self) -> bool:
        """Whether this node can publish and deliver now."""
        return self.broker.connected

    def record_events(self, max_backlog: int) -> EventLog:
        """Write lifecycle events to the broker's event log from now on (before :meth:`start`).

        Subscribes and unsubscribes here, connects and disconnects (see
        subscription.py), and joins and leaves (by the presence store);
        web/events.py delivers them.
        """
        self.events = self.broker.event_log(self.presence, max_backlog)
        return self.events

    async def start(self) -> None:
        """Connect the broker (in the background if it cannot connect yet)."""
        self._loop = asyncio.get_running_loop()
        await self.broker.start(self)
        await self.presence.start()

    async def stop(
        self, code: int = CLOSE_GOING_AWAY, reason: str = "server shutting down"
    ) -> None:
        """Close every subscriber with ``code`` and stop the broker."""
        self._stopping = True
        self.close_subscribers(code, reason)
        events = self.events
        if events is not None:
            # Their unsubscribes stored before the leaves the withdrawal writes.
            await events.flush()
        # Withdrawn first: while the broker still runs, so it stops counting at once.
        await self.presence.stop()
        if events is not None:
            await events.stop()
        await self.broker.stop()

    async def publish(
        self, target: Target, payload: bytes, *, idempotency_key: str | None = None
    ) -> Position:
        """Publish ``payload`` to a channel or subtree on every process.

        Returns its position in the history once the broker accepted it;
        raises :class:`~tornado_channels.brokers.base.PublishError` otherwise.
        With ``idempotency_key``, publishing again with the same key (and the
        same message) returns the first position and publishes nothing.
        """
        receipt = await self.submit([(target, payload)], idempotency_key=idempotency_key)
        return receipt.positions[0]

    async def publish_many(
        self, messages: Sequence[tuple[Target, bytes]], *, idempotency_key: str | None = None
    ) -> list[Position]:
        """Publish several messages, in order, as one broker operation; all or none.

        Returns their positions; raises like :meth:`publish`.
        """
        receipt = await self.submit(messages, idempotency_key=idempotency_key, batch=True)
        return receipt.positions

    async def submit(
        self,
        messages: Sequence[tuple[Target, bytes]],
        *,
        idempotency_key: str | None = None,
        batch: bool = False,
        caller: str | None = None,
    ) -> Receipt:
        """Publish ``messages`` and say whether an idempotency key replayed them.

        One message goes with whatever else is published in this pass of the
        loop (``batch=False``); a batch as one broker operation.  ``caller``
        scopes the key to who publishes (see core/idempotency.py's
        ``scoped``; None: the trusted, unscoped keys).  Raises
        :class:`~tornado_channels.core.idempotency.InvalidIdempotencyKey` for
        a malformed key, and like :meth:`publish` otherwise.
        """
        idempotency = idempotency_for(idempotency_key, messages, caller)
        publications = [Publication(target, payload) for target, payload in messages]
        if log.isEnabledFor(logging.DEBUG):
            for target, payload in messages:
                log.debug("Publishing message to channel %s: %d bytes", target, len(payload))
        if batch or len(publications) != 1:
            publishing = self.broker.publish_many(publications, idempotency)
        else:
            publishing = self.broker.publish(publications[0], idempotency)
        # Awaited here, not in a helper coroutine: one frame less per POST.
        started = time.perf_counter()
        try:
            receipt = await publishing
        except BrokerUnavailable:
            self.publish_failures["unavailable"] += 1
            raise
        except PublishOutcomeUnknown:
            self.publish_failures["outcome_unknown"] += 1
            raise
        # Successful publishes only: a refusal is fast and would skew latency.
        self.publish_latency.observe(time.perf_counter() - started)
        if not receipt.replayed:
            self.published += len(publications)
        return receipt

    async def head(self, target: Target) -> Position:
        """The latest position that could reach ``target``: where a client without one starts."""
        return await self.broker.head(target)

    async def recover(self, target: Target, since: Position) -> Recovery:
        """What reached ``target`` after ``since``, from the broker's history.

        Publications this node has received but not yet delivered (it
        delivers once per pass of the loop) are delivered first: they may be
        in the history just read, and a subscriber that holds live messages
        while it recovers (see core/resume.py) must hold them too, or its
        seam could not drop them.
        """
        recovered = await self.broker.recover(target, since)
        self.flush()
        return recovered

    async def subscribe(
        self,
        target: Target,
        subscriber: Subscriber,
        *,
        user: str | None = None,
        presence_events: bool = False,
    ) -> None:
        """Add ``subscriber`` to ``target``; return once the broker delivers to it.

        It counts in presence from now on, as ``user`` when given; with
        ``presence_events`` it is told of joins and leaves on ``target``.  Raises
        :class:`~tornado_channels.brokers.base.BrokerUnavailable` (and
        leaves nothing subscribed) when the broker cannot take the subscription.
        """
        if not self.hub.add(target, subscriber):
            return
        if user is not None:
            # Only named subscribers take an entry: anonymous ones cost nothing here.
            self._users[subscriber] = user
        name = presence_name(target)
        if self.events is not None:
            self.events.emit(SUBSCRIBE, name, user)
        if presence_events:
            watchers = self._presence_watchers.setdefault(name, set())
            if not watchers:
                self.presence.watch(name)
            watchers.add(subscriber)
        if self.tally.add(name, user):
            assert user is not None
            self.presence.moved(name, JOIN, user)
        self.presence.changed()
        # Taken at once and released exactly once (by unsubscribe), whether
        # the wait below succeeds, fails, or is cancelled by a closing client.
        self.broker.subscribe(target)
        try:
            await self.broker.confirm(target)
            if presence_events:
                await self.presence.confirm_watch(name)
        except BaseException:
            self.unsubscribe(target, subscriber)
            raise

    def unsubscribe(self, target: Target, subscriber: Subscriber) -> None:
        """Remove ``subscriber`` from ``target``; safe to call more than once."""
        if self.hub.discard(target, subscriber):
            self.broker.unsubscribe(target)
            name = presence_name(target)
            user = self._users.pop(subscriber, None)
            if self.events is not None:
                self.events.emit(UNSUBSCRIBE, name, user)
            watchers = self._presence_watchers.get(name)
            if watchers is not None and subscriber in watchers:
                watchers.discard(subscriber)
                if not watchers:
                    del self._presence_watchers[name]
                    self.presence.unwatch(name)
            if self.tally.discard(name, user):
                assert user is not None
                self.presence.moved(name, LEAVE, user)
            self.presence.changed()
            if not len(self.hub):
                self._emptied.set()

    async def drain(
        self, timeout: float, code: int = CLOSE_GOING_AWAY, reason: str = "server shutting down"
    ) -> bool:
        """Close every subscriber and wait up to ``timeout`` seconds for them to go.

        Returns whether all of them went.  Used on shutdown, before :meth:`stop`,
        so clients get a close frame and can reconnect elsewhere.
        """
        if not len(self.hub):
            return True
        self._emptied.clear()
        self.close_subscribers(code, reason)
        return await _wait(self._emptied, timeout)

    async def wait_connected(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the broker to connect; return whether it did."""
        return await _wait(self._connected, timeout)

    def close_subscribers(self, code: int, reason: str) -> None:
        """Close every local subscriber (each unsubscribes as it goes)."""
        # What was received before the close reaches them before the close.
        self.flush()
        for subscriber in self.hub.subscribers():
            try:
                subscriber.close(code, reason)
            except Exception:
                log.debug("closing a subscriber failed", exc_info=True)

    def presence_moved(self, name: str, kind: str, user: str) -> None:
        """A join or leave on ``name``, deployment-wide: tell who asked (``?presence=1``).

        Encoded once per encoding, never awaited; a watcher that falls too far
        behind is closed like any slow consumer (4008).
        """
        watchers = self._presence_watchers.get(name)
        if not watchers:
            return
        groups: dict[Encoding, list[Subscriber]] = {}
        for subscriber in watchers:
            groups.setdefault(subscriber.encoding, []).append(subscriber)
        for encoding, members in groups.items():
            self.hub.broadcast(
                members, [(UNNUMBERED, presence_event_for(encoding, kind, user, name))]
            )

    def flush(self) -> None:
        """Deliver the publications received so far, in order; safe to call at any time.

        Also called before anything that must come after what this node has
        already received: a close frame, or a recovery's seam.
        """
        pending, self._pending = self._pending, []
        if not pending:
            return
        sent = self.hub.deliver(pending)
        if sent and log.isEnabledFor(logging.DEBUG):
            for publication in pending:
                log.debug("Sending message to clients on channel %s", publication.target)

    # BrokerEvents

    def received(self, publication: Publication) -> None:
        """A publication from the broker: delivered at the start of the event loop's next pass.

        With every other publication received in this one: under load,
        several messages to a channel then reach each subscriber in one write
        instead of one write each (the hub joins consecutive ones), and an
        idle loop adds no delay worth measuring (one pass).
        """
        pending = self._pending
        pending.append(publication)
        if len(pending) == 1:
            (self._loop or asyncio.get_running_loop()).call_soon(self.flush)

    def subscription_lost(self, target: Target) -> None:
        """The broker lost ``target``'s subscription: its subscribers may have missed messages."""
        self.flush()
        for subscriber in self.hub.subscribers_of(target):
            try:
                subscriber.close(
                    CLOSE_TRY_AGAIN_LATER, "subscription lost: messages may have been missed"
                )
            except Exception:
                log.debug("closing a subscriber failed", exc_info=True)

    def broker_state_changed(self, connected: bool, partition: int | None = None) -> None:
        """On loss, tell subscribers they may have missed messages.

        With ``partition``, only that partition's connection changed: only its
        subscribers are closed.  The broker logs its own connects and losses;
        this logs what the node does.
        """
        if connected:
            self._connected.set()
            return
        self._connected.clear()
        if self._stopping:
            return
        # Publications sent while we are disconnected never reach us: close
        # with a retryable code rather than leave clients silently deaf.
        self.flush()
        affected = self.hub.subscribers(partition)
        if affected:
            where = "" if partition is None else f" of partition {partition}"
            log.warning(
                "closing %d subscriptions%s: the broker connection was lost", len(affected), where
            )
        for subscriber in affected:
            try:
                subscriber.close(
                    CLOSE_TRY_AGAIN_LATER, "broker unavailable: messages may have been missed"
                )
            except Exception:
                log.debug("closing a subscriber failed", exc_info=True)


async def _wait(event: asyncio.Event, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``event``; return whether it was set."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except asyncio.TimeoutError:
        return False
    return True
