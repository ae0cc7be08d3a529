"""Publishes made in one pass of the event loop, sent to the broker together.

Concurrent POSTs each publish on their own; over Redis that is one round
trip and one script call each.  Gathered per pass of the event loop, they go
as one call instead (in order), which is where pipelining pays: under load,
many per pass; when idle, one (and the wait is one pass of the loop).  Each
publish stays its own *group*: its own idempotency key, its own outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from ..core.idempotency import Idempotency
from ..core.publication import Publication, Receipt
from .base import BrokerUnavailable, PublishError

#: Most publishes sent in one call when more queue up in one pass.
MAX_BATCH = 500

#: One publish request: its publications and its idempotency key, if any.
Request = tuple[Sequence[Publication], Idempotency | None]
#: Sends requests as one operation; a receipt or an error per request, in order.
Submit = Callable[[Sequence[Request]], Awaitable[list[Receipt | PublishError]]]


class PublishCoalescer:
    """Turns single publishes into one ``submit`` call per pass of the loop.

    Each caller gets its own receipt or its own error.
    """

    def __init__(self, submit: Submit, max_batch: int = MAX_BATCH) -> None:
        self._submit = submit
        self._max_batch = max_batch
        self._queued: list[tuple[Request, asyncio.Future[Receipt]]] = []
        self._sending: set[asyncio.Task[None]] = set()

    async def publish(self, publication: Publication, idempotency: Idempotency | None) -> Receipt:
        """Publish with whatever else is published in this pass of the loop."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Receipt] = loop.create_future()
        self._queued.append((([publication], idempotency), waiter))
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

    async def _send_batch(self, batch: list[tuple[Request, asyncio.Future[Receipt]]]) -> None:
        try:
            results = await self._submit([request for request, _ in batch])
        except BaseException:
            # Stopped (cancelled), or a bug: no caller waits forever.
            for _, waiter in batch:
                if not waiter.done():
                    waiter.set_exception(BrokerUnavailable("the publish was abandoned"))
            raise
        for (_, waiter), result in zip(batch, results, strict=True):
            if waiter.done():
                continue
            if isinstance(result, PublishError):
                waiter.set_exception(result)
            else:
                waiter.set_result(result)
