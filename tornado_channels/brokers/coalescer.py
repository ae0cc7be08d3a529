"""Publishes made in one pass of the event loop, sent to the broker as one batch.

Concurrent POSTs each publish on their own; over Redis that is one round
trip and one script call each.  Gathered per pass of the event loop, they go
as one ``publish_many`` call instead (in order, all or none), which is
where pipelining pays: under load, many per pass; when idle, one (and the
wait is one pass of the loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from ..core.publication import Position, Publication
from .base import BrokerUnavailable, PublishOutcomeUnknown

#: Most publishes sent in one call when more queue up in one pass.
MAX_BATCH = 500

PublishMany = Callable[[Sequence[Publication]], Awaitable[list[Position]]]


class PublishCoalescer:
    """Turns single publishes into ``publish_many`` calls, one per pass of the loop.

    Each caller gets its own publication's position, or the batch's error (a
    fresh exception of the same type each, as the outcome is the same for all).
    """

    def __init__(self, publish_many: PublishMany, max_batch: int = MAX_BATCH) -> None:
        self._publish_many = publish_many
        self._max_batch = max_batch
        self._queued: list[tuple[Publication, asyncio.Future[Position]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def publish(self, publication: Publication) -> Position:
        """Publish with whatever else is published in this pass of the loop."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Position] = loop.create_future()
        self._queued.append((publication, waiter))
        if len(self._queued) == 1:
            loop.call_soon(self._send)
        return await waiter

    async def stop(self) -> None:
        """Abandon what is being sent (its callers get BrokerUnavailable)."""
        for task in [*self._sending]:
            task.cancel()
        await asyncio.gather(*self._sending, return_exceptions=True)

    def _send(self) -> None:
        batch = self._queued[: self._max_batch]
        del self._queued[: self._max_batch]
        if self._queued:
            asyncio.get_running_loop().call_soon(self._send)
        task = asyncio.ensure_future(self._send_batch(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send_batch(self, batch: list[tuple[Publication, asyncio.Future[Position]]]) -> None:
        try:
            positions = await self._publish_many([publication for publication, _ in batch])
        except (BrokerUnavailable, PublishOutcomeUnknown) as exc:
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(type(exc)(*exc.args))
            return
        except BaseException:
            # Stopped (cancelled), or a bug: no caller waits forever.
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(BrokerUnavailable("the publish was abandoned"))
            raise
        for (_, waiter), position in zip(batch, positions, strict=True):
            if not waiter.done():
                waiter.set_result(position)
