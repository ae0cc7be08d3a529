"""The Redis broker's pub/sub links, by partition.

A standalone or Sentinel deployment has one link, which carries every
partition (there is only one); a cluster has one per partition, each on
the master that serves the partition's slot.  Whoever subscribes (the
broker for channels and subtrees, presence for joins and leaves) names
the partition and the keys; :class:`Links` finds the link.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

from .keys import KeyLayout
from .link import Link, LinkListener, Master
from .settings import BrokerSettings, Reconnection


class Links:
    """Every pub/sub link of one broker, and what they hold together."""

    def __init__(
        self,
        master: Master,
        layout: KeyLayout,
        node: bytes,
        listener: LinkListener,
        *,
        sharded: bool,
        settings: BrokerSettings,
        reconnection: Reconnection,
    ) -> None:
        count = layout.partitions if sharded else 1
        self._links = [
            Link(
                master,
                partition,
                listener,
                control_key=layout.control(partition, node),
                stray_pattern=layout.base(partition) + b"*",
                sharded=sharded,
                settings=settings,
                reconnection=reconnection,
            )
            for partition in range(count)
        ]

    def __iter__(self) -> Iterator[Link]:
        """Each link, in partition order."""
        return iter(self._links)

    @property
    def single(self) -> bool:
        """Whether one link carries every partition (no cluster)."""
        return len(self._links) == 1

    def of(self, partition: int) -> Link:
        """The link that carries ``partition``."""
        return self._links[partition if len(self._links) > 1 else 0]

    def acquire(self, partition: int, keys: Sequence[bytes]) -> None:
        """Take ``keys`` on ``partition``'s link (see Link.acquire)."""
        self.of(partition).acquire(keys)

    def release(self, partition: int, keys: Sequence[bytes]) -> None:
        """Release ``keys`` on ``partition``'s link (see Link.release)."""
        self.of(partition).release(keys)

    async def confirm(self, partition: int, keys: Sequence[bytes]) -> bool | None:
        """Wait for Redis to confirm ``keys`` on ``partition``'s link (see Link.confirm)."""
        return await self.of(partition).confirm(keys)

    @property
    def connected(self) -> bool:
        """True while every link holds its subscriptions (every needed master is reachable)."""
        return all(link.connected for link in self._links)

    @property
    def reconnects(self) -> int:
        """Times a link reconnected after losing its connection."""
        return sum(link.reconnects for link in self._links)

    @property
    def repairs(self) -> int:
        """Subscriptions self-checks found Redis holding wrongly, and repaired."""
        return sum(link.repairs for link in self._links)

    def start(self) -> None:
        """Start every link; each connects (and reconnects) on its own."""
        for link in self._links:
            link.start()

    async def stop(self) -> None:
        """Stop every link."""
        await asyncio.gather(*(link.stop() for link in self._links), return_exceptions=True)
