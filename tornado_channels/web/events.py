"""Lifecycle events POSTed to the backend (``--events-url``), at least once, in order.

The node writes events to its broker's event log (brokers/events.py); an
:class:`EventSender` per process delivers the partitions whose lease it
holds: it reads a partition's oldest events, POSTs them as one batch
``{"events": [...]}``, and removes them once the backend answered 2xx.
Anything else (an error status, a refused connection, a timeout) is retried,
the same batch from the same first event, after a delay that doubles up to
:data:`BACKOFF_CAP`: a backend that was down receives everything once it is
back, possibly some events twice, always with the same ``id``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from dataclasses import dataclass

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..brokers.base import BrokerUnavailable
from ..brokers.events import BATCH, MAX_BACKLOG, Event, EventLog
from ..core.settings import setting

log = logging.getLogger("tornado_channels.events")

#: Seconds before the first retry of a batch the backend did not take, and at most.
BACKOFF_BASE = 0.1
BACKOFF_CAP = 5.0
#: Seconds between looks at a partition's events when this process appended none.
POLL = 0.1


@dataclass(frozen=True)
class EventSettings:
    """Where lifecycle events are delivered, and how many may wait."""

    events_url: str | None = setting(
        None,
        "POST lifecycle events (subscribe, unsubscribe, join, leave, connect, disconnect) "
        "to this URL in JSON batches, at least once and in order per channel (docs/events.md)",
        shown="(none: no events)",
        metavar="URL",
    )
    events_max_backlog: int = setting(
        MAX_BACKLOG,
        "undelivered events kept per partition (one on the embedded broker or a standalone "
        "Redis); past it the oldest are dropped, logged and counted",
    )
    events_timeout: float = setting(
        5.0,
        "seconds the events backend may take to answer a batch (beyond: retried)",
        metavar="SECONDS",
    )


class EventSender:
    """Delivers ``events``' events to ``url``: one task per partition, while it holds the lease."""

    def __init__(self, events: EventLog, url: str, *, timeout: float = 5.0) -> None:
        self.events = events
        self.url = url
        self.timeout = timeout
        #: Seconds between renewals of the leases (a third of their life).
        self.renew = events.lease / 3
        # Its own client: one request in flight per partition, never queued behind others'.
        self._client = AsyncHTTPClient(force_instance=True, max_clients=max(10, events.partitions))
        self._tasks: list[asyncio.Task[None]] = []
        # Per partition: set while this process holds its lease.
        self._held = [asyncio.Event() for _ in range(events.partitions)]
        # Per partition: whether everything stored so far was delivered.
        self._idle = [asyncio.Event() for _ in range(events.partitions)]

    def start(self) -> None:
        """Begin: take what leases are free, and deliver."""
        self._tasks = [asyncio.ensure_future(self._keep_leases())]
        self._tasks += [
            asyncio.ensure_future(self._deliver_forever(p)) for p in range(self.events.partitions)
        ]

    async def stop(self, timeout: float) -> None:
        """Stop; first, when the events would die with the process, deliver them (``timeout``).

        Events in Redis wait there: another process (or this one, restarted)
        delivers them once the lease this one gives up is taken.
        """
        waiting = [
            idle.wait()
            for held, idle in zip(self._held, self._idle, strict=True)
            if held.is_set() and not self.events.durable
        ]
        if waiting:
            try:
                await asyncio.wait_for(asyncio.gather(*waiting), timeout)
            except asyncio.TimeoutError:
                log.warning("stopping with events not yet delivered: they are lost")
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._client.close()

    async def _keep_leases(self) -> None:
        while True:
            for partition, held in enumerate(self._held):
                try:
                    holding = await self.events.hold(partition)
                except BrokerUnavailable as exc:
                    log.debug("renewing the events lease failed: %s", exc)
                    holding = False
                except Exception:
                    log.exception("renewing the events lease failed")
                    holding = False
                if holding and not held.is_set():
                    log.info("delivering the events of partition %d", partition)
                    held.set()
                elif not holding and held.is_set():
                    log.info("no longer delivering the events of partition %d", partition)
                    held.clear()
            await asyncio.sleep(self.renew)

    async def _deliver_forever(self, partition: int) -> None:
        failures = 0
        while True:
            await self._held[partition].wait()
            try:
                delivered = await self._deliver(partition)
            except BrokerUnavailable as exc:
                log.debug("reading or acknowledging events failed: %s", exc)
                delivered = False
            except Exception:
                log.exception("delivering events failed")
                delivered = False
            if delivered:
                failures = 0
            else:
                failures += 1
                await self._back_off(failures)

    async def _deliver(self, partition: int) -> bool:
        """Deliver the oldest batch (or wait for one); False if it must be tried again."""
        idle = self._idle[partition]
        batch = await self.events.read(partition, BATCH)
        if not batch:
            idle.set()
            await self.events.wait(partition, POLL)
            return True
        idle.clear()
        if not await self._post(batch):
            return False
        # Should this fail, the batch was delivered but not removed: it is
        # sent again, with the same ids (at least once, never lost).
        if await self.events.ack(partition, batch[-1]):
            self.events.delivered += len(batch)
        else:
            self._held[partition].clear()  # Another process took over: it delivers from here.
        return True

    async def _back_off(self, failures: int) -> None:
        delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** min(failures - 1, 16))
        # Jittered, so workers whose backend came back do not all retry together.
        await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _post(self, batch: list[Event]) -> bool:
        """POST one batch; whether the backend took it (2xx)."""
        body = json.dumps({"events": [event.as_json() for event in batch]})
        request = HTTPRequest(
            self.url,
            method="POST",
            body=body,
            headers={"Content-Type": "application/json"},
            request_timeout=self.timeout,
            connect_timeout=self.timeout,
            follow_redirects=False,
        )
        try:
            await self._client.fetch(request)
        except HTTPClientError as exc:
            log.warning("the events backend answered %d: retrying", exc.code)
            return False
        except (OSError, asyncio.TimeoutError) as exc:
            log.warning("the events backend is unreachable (%s): retrying", exc)
            return False
        return True


__all__ = ["EventSender", "EventSettings"]
