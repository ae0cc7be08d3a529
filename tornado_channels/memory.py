"""The embedded in-memory broker: a complete single-process transport."""

from __future__ import annotations

from .broker import Broker, BrokerEvents, BrokerUnavailable
from .channels import Channel
from .envelope import Publication


class MemoryBroker(Broker):
    """Delivers every publication straight back to its own node.

    Used when no Redis URL is configured.  It has no connection to lose, so it
    is connected from :meth:`start` until :meth:`stop`.
    """

    kind = "memory"

    def __init__(self) -> None:
        self._events: BrokerEvents | None = None

    async def start(self, events: BrokerEvents) -> None:
        """Connected at once: there is nothing to connect to."""
        self._events = events
        events.broker_state_changed(True)

    async def stop(self) -> None:
        """Stop delivering; publishes fail from now on."""
        events, self._events = self._events, None
        if events is not None:
            events.broker_state_changed(False)

    @property
    def connected(self) -> bool:
        """True between start and stop."""
        return self._events is not None

    async def publish(self, publication: Publication) -> None:
        """Deliver to this process's subscribers before returning."""
        if self._events is None:
            raise BrokerUnavailable("the memory broker is stopped")
        self._events.deliver(publication)

    async def subscribe(self, channel: Channel) -> None:
        """Nothing to do while started: every publication reaches the node."""
        # The hub filters by channel.
        if self._events is None:
            raise BrokerUnavailable("the memory broker is stopped")

    def unsubscribe(self, channel: Channel) -> None:
        """Nothing to undo."""
