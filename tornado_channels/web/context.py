"""What every route of one mount point shares, in one object (built once, by routing.mount).

Handlers, ``admit()``, a WebSocket client's :class:`~.chat.Chat` and the
publishing routes take a :class:`MountContext`, never its parts one by one:
a new shared collaborator is one field here, not an argument threaded
through every edge.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import tornado.template

from ..node import Node
from .config import ChannelConfig
from .connection import Heartbeat
from .hooks import ChannelHooks
from .tokens import Guard


class InFlight:
    """Publishing requests in progress (from their headers to their answer), for a graceful stop.

    Counted from the headers, so a shutdown also waits for bodies still
    arriving.  One per server, shared by every publishing route.
    """

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def started(self) -> None:
        """A request began."""
        self.count += 1
        self._idle.clear()

    def finished(self) -> None:
        """A request ended (answered, or its client went away)."""
        self.count -= 1
        if not self.count:
            self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the requests in progress to end."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True


@dataclass(frozen=True, slots=True)
class MountContext:
    """The node, hooks, settings and helpers of one mount point's routes."""

    node: Node
    hooks: ChannelHooks
    #: The mount point's settings (its prefix included).
    config: ChannelConfig
    #: Channel tokens and the publish key, as ``config`` asks.
    guard: Guard
    #: Publishes in progress, shared with the server that waits for them on shutdown.
    in_flight: InFlight
    #: One timer pinging every WebSocket of the mount point (None: pings disabled).
    heartbeat: Heartbeat | None
    #: The pages' templates.
    templates: tornado.template.Loader
