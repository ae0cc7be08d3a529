"""Publishing straight into Redis, with no HTTP hop: :class:`RedisPublisher`.

For a backend that already talks to the Redis the servers share.  It is the
servers' own publish path: a :class:`~tornado_channels.brokers.redis.RedisBroker`
built from the same settings (``BrokerSettings``), never started (it holds no
subscription), whose ``send()`` runs the same Lua script (publish.lua) on
the same keys (keys.py), in every mode (standalone, Sentinel, Cluster).  So
its messages get positions in the same sequence as the servers' own,
subscribers resume across them, and an ``Idempotency-Key`` used here is the
same key a POST would use.  :class:`SyncRedisPublisher` is the same for
synchronous code.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable, Iterator, Mapping
from typing import Any, TypeVar

from ..brokers import base
from ..brokers.redis import RedisBroker
from ..brokers.settings import BrokerSettings
from ..core.channels import InvalidChannel, Target, parse_target
from ..core.idempotency import InvalidIdempotencyKey, idempotency_for
from ..core.publication import Publication, Receipt
from . import api
from .api import Data, Message
from .closing import AsyncClosing, Closing
from .errors import (
    BadRequest,
    BrokerUnavailable,
    ChannelError,
    ChannelsError,
    IdempotencyKeyReused,
    PublishOutcomeUnknown,
)
from .retry import Retry, retryable

T = TypeVar("T")


class RedisPublisher(AsyncClosing):
    """Publish into the servers' Redis directly, from asyncio code.

    :param redis_url: as the servers' ``--redis-url`` (with ``redis_cluster=True``,
        any node of the cluster; with ``redis_sentinel``, only its credentials, db and TLS).
    :param retry: as :class:`~.publisher.Publisher`'s; a publish without a key
        gets a fresh ``Idempotency-Key`` while retries are on (``auto_idempotency``).
    :param settings: any other :class:`~tornado_channels.brokers.settings.BrokerSettings`
        field, named as the servers' flags are (``redis_prefix``, ``redis_sentinel``,
        ``redis_sentinel_master``, ``redis_cluster``, ``redis_partitions``,
        ``history_size``, ``history_age``, ``idempotency_ttl``, ``redis_timeout``,
        ``redis_wait_replicas``): use the servers' values, or positions and
        history will not match theirs.

    Errors mirror the server's answers: :class:`~.errors.BrokerUnavailable` (Redis
    unreachable: nothing published), :class:`~.errors.PublishOutcomeUnknown` (Redis
    did not answer in time), :class:`~.errors.IdempotencyKeyReused`,
    :class:`~.errors.ChannelError`.  The server's ``--max-message-size`` is not
    applied here: this publisher is as trusted as the servers.
    """

    def __init__(
        self,
        redis_url: str | None = None,
        *,
        retry: Retry | None = None,
        auto_idempotency: bool = True,
        **settings: Any,
    ) -> None:
        self.settings = BrokerSettings(redis_url=redis_url, **settings)
        if not self.settings.uses_redis:
            raise ValueError("RedisPublisher needs redis_url (or redis_sentinel)")
        self.broker = RedisBroker(self.settings)
        self.retry = retry or Retry()
        self._auto_idempotency = auto_idempotency

    async def publish(self, target: str, data: Data, *, idempotency_key: str | None = None) -> str:
        """Publish ``data`` to ``target`` (``"users/1"``, or ``"users/"`` below); its position."""
        receipt = await self._send([(target, data)], idempotency_key)
        return str(receipt.positions[0])

    async def publish_many(
        self,
        messages: Iterable[Message] | Mapping[str, Data],
        *,
        idempotency_key: str | None = None,
    ) -> list[str]:
        """Publish ``(target, data)`` pairs all or none, in order, with consecutive positions."""
        pairs = list(messages.items() if isinstance(messages, Mapping) else messages)
        if not pairs:
            return []
        receipt = await self._send(pairs, idempotency_key)
        return [str(position) for position in receipt.positions]

    async def _send(self, pairs: list[Message], idempotency_key: str | None) -> Receipt:
        messages = [(_target(target), api.payload(data)) for target, data in pairs]
        if idempotency_key is None and self._auto_idempotency and self.retry.attempts:
            idempotency_key = api.new_idempotency_key()
        try:
            idempotency = idempotency_for(idempotency_key, messages)
        except InvalidIdempotencyKey as exc:
            raise BadRequest(400, "invalid_idempotency_key", str(exc)) from None
        publications = [Publication(target, payload) for target, payload in messages]
        bounds: Iterator[float] = self.retry.delays()
        while True:
            try:
                if self.broker.mode == "cluster":
                    # Where each partition's slot is served: looked up again
                    # before a retry (at most every 0.25 s), as a failover moves it.
                    await self.broker.topology.refresh()
                return await self.broker.send(publications, idempotency)
            except (base.PublishError, OSError) as exc:
                error = _mirrored(exc)
                cause: BaseException = exc
            bound = next(bounds, None)
            if bound is None or not retryable(error, idempotency is not None):
                raise error from cause
            await asyncio.sleep(self.retry.delay(bound, error))

    async def aclose(self) -> None:
        """Close every connection to Redis."""
        await self.broker.stop()


def _target(text: str) -> Target:
    """The channel or subtree ``text`` names, as a POST's path would; raise ChannelError."""
    try:
        return parse_target(api.target_path("", text)[1:])
    except InvalidChannel as exc:
        raise ChannelError(400, "invalid_channel", str(exc)) from None


def _mirrored(exc: BaseException) -> ChannelsError:
    """The client error a broker refusal mirrors (the server would answer the same)."""
    if isinstance(exc, base.IdempotencyConflict):
        return IdempotencyKeyReused(422, "idempotency_key_reused", str(exc))
    if isinstance(exc, base.PublishOutcomeUnknown):
        return PublishOutcomeUnknown(504, "publish_outcome_unknown", str(exc))
    return BrokerUnavailable(503, "broker_unavailable", str(exc))


class SyncRedisPublisher(Closing):
    """:class:`RedisPublisher` for synchronous code (Django, Flask, Celery): calls block.

    The publisher runs on an event loop of its own, in a daemon thread this
    object starts and :meth:`close` ends; the calling thread needs no loop.
    Thread-safe: calls from many threads are sent in turn on that loop.
    Arguments are :class:`RedisPublisher`'s; ``timeout`` bounds each call
    (retries included).
    """

    def __init__(
        self, redis_url: str | None = None, *, timeout: float = 30.0, **options: Any
    ) -> None:
        self._timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tornado-channels-redis-publisher", daemon=True
        )
        self._thread.start()
        self._publisher: RedisPublisher = self._call(_make(redis_url, options))

    def publish(self, target: str, data: Data, *, idempotency_key: str | None = None) -> str:
        """Publish ``data`` to ``target``; its position (see :meth:`RedisPublisher.publish`)."""
        return self._call(self._publisher.publish(target, data, idempotency_key=idempotency_key))

    def publish_many(
        self,
        messages: Iterable[Message] | Mapping[str, Data],
        *,
        idempotency_key: str | None = None,
    ) -> list[str]:
        """Publish ``(target, data)`` pairs all or none, in order; their positions."""
        return self._call(self._publisher.publish_many(messages, idempotency_key=idempotency_key))

    def close(self) -> None:
        """Close the connections to Redis and end the publisher's thread."""
        if self._loop.is_closed():
            return
        try:
            self._call(self._publisher.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(self._timeout)
            self._loop.close()

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(self._timeout)


async def _make(redis_url: str | None, options: dict[str, Any]) -> RedisPublisher:
    # Made on its loop: the broker's locks and clients belong to the loop that uses them.
    return RedisPublisher(redis_url, **options)
