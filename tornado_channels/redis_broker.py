"""The Redis broker: Redis pub/sub carries every publication between processes.

Each process subscribes (plain SUBSCRIBE, never a pattern, so no character in a
channel name is special) to one Redis channel per local channel and one per
subtree containing it::

    <prefix>c:<channel>   publications to exactly <channel>
    <prefix>t:<subtree>   publications to every channel below <subtree>
    <prefix>n:<node id>   this process's own control channel (liveness probe)

so a process receives only what its subscribers need.  A listener task on the
IOLoop reads them; it never dies silently: on any error it logs, marks the
broker disconnected, and reconnects with capped exponential backoff and jitter,
resubscribing to everything.  When it has heard nothing for a while it
publishes a probe to its control channel and reconnects if the probe does not
come back: a frozen Redis or a silent partition cannot leave it deaf.

Publishing also records history, atomically: see redis_history.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import secrets
import socket
from collections.abc import Awaitable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .batcher import PublishBatcher
from .broker import Broker, BrokerEvents, BrokerUnavailable, PublishOutcomeUnknown, Recovered
from .channels import Channel
from .envelope import MalformedEnvelope, Publication, decode
from .history import Position, channel_keys
from .redis_history import RedisHistory

log = logging.getLogger("tornado_channels.redis")


class _Deaf(Exception):
    """The liveness probe did not come back in time."""


def redact_url(url: str) -> str:
    """``url`` with any password replaced, for logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:" if parts.username else ":"
    return urlunsplit(parts._replace(netloc=f"{user}***@{netloc}"))


class RedisBroker(Broker):
    """A :class:`~tornado_channels.broker.Broker` over Redis pub/sub.

    :param url: ``redis://[[user]:password@]host[:port][/db]`` (or ``rediss://``).
    :param prefix: namespace for every Redis channel this broker uses.
    :param command_timeout: how long a PUBLISH may take before its outcome is unknown.
    :param probe_interval: silence after which the listener sends a probe.
    :param probe_timeout: how long a probe may take to come back.
    """

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "tornado_channels:",
        connect_timeout: float = 2.0,
        command_timeout: float = 5.0,
        subscribe_timeout: float = 5.0,
        probe_interval: float = 2.0,
        probe_timeout: float = 2.0,
        backoff_base: float = 0.1,
        backoff_cap: float = 1.0,
        history_size: int = 100,
        history_age: float = 300.0,
    ) -> None:
        self.url = url
        self._prefix = prefix.encode("utf-8")
        node_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._control_key = self._prefix + b"n:" + node_id.encode("utf-8")
        self._history = RedisHistory(self._prefix, history_size, history_age)
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._subscribe_timeout = subscribe_timeout
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self._tick = min(probe_interval, probe_timeout) / 2
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap

        self._events: BrokerEvents | None = None
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._connected = False
        # Redis channel -> number of local subscriptions that need it.
        self._interest: dict[bytes, int] = {}
        # Redis channel -> SUBSCRIBE acknowledgements still to come on this
        # connection; a waiter is released only when the last one arrives, so
        # an ack for an earlier, since-cancelled SUBSCRIBE cannot release it.
        self._unacked: dict[bytes, int] = {}
        self._ack_waiters: dict[bytes, asyncio.Future[None]] = {}
        self._batcher = PublishBatcher(self.publish_many)
        #: Times the listener has reconnected after losing its connection.
        self.reconnects = 0
        self._lost_at: float | None = None

    # Broker interface

    @property
    def connected(self) -> bool:
        """True from the listener's first subscription ack until its connection fails."""
        return self._connected

    async def start(self, events: BrokerEvents) -> None:
        """Start the listener task; it connects (and reconnects) on its own."""
        self._events = events
        self._client = Redis.from_url(
            self.url,
            # Never retry a command blindly: a retried PUBLISH can deliver twice.
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=self._connect_timeout,
            socket_timeout=self._command_timeout,
        )
        self._history.bind(self._client)
        self._listener = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Cancel the listener and background sends; close every connection."""
        tasks = [*self._background]
        if self._listener is not None:
            tasks.append(self._listener)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, self._batcher.stop(), return_exceptions=True)
        self._listener = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        self._set_connected(False)
        self._events = None

    async def publish(self, publication: Publication) -> Position:
        """Record and PUBLISH once, never retried; see :class:`~.broker.PublishOutcomeUnknown`.

        Publishes made in the same pass of the event loop (concurrent POSTs,
        say) go to Redis together, in order, as one script call: one round
        trip for all of them instead of one each, and the same all-or-none
        outcome for all of them.
        """
        self._require_connected()
        return await self._batcher.publish(publication)

    async def publish_many(self, publications: Sequence[Publication]) -> list[Position]:
        """Record and PUBLISH all in one atomic script call, never retried."""
        self._require_connected()
        if not publications:
            return []
        try:
            return await self._history.publish(publications)
        except RedisTimeoutError as exc:
            raise PublishOutcomeUnknown(f"Redis did not answer the publish in time: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"Redis refused the publish: {exc}") from exc

    async def subscribe(self, channel: Channel) -> None:
        """SUBSCRIBE to the channel's keys not yet held, and wait for Redis's acks."""
        keys = self._channel_keys(channel)
        new = []
        for key in keys:
            count = self._interest.get(key, 0)
            self._interest[key] = count + 1
            if count == 0:
                new.append(key)
        try:
            if not self._connected or self._pubsub is None:
                raise BrokerUnavailable("not connected to Redis")
            if new:
                self._expect_acks(new)
                await self._pubsub.subscribe(*new)
            waiters = [self._ack_waiters[key] for key in keys if key in self._ack_waiters]
            if waiters:
                _, late = await asyncio.wait(waiters, timeout=self._subscribe_timeout)
                if late:
                    raise BrokerUnavailable("Redis did not confirm the subscription in time")
        except (RedisError, OSError) as exc:
            self.unsubscribe(channel)
            raise BrokerUnavailable(f"Redis refused the subscription: {exc}") from exc
        except BaseException:  # BrokerUnavailable above, or a cancelled handshake.
            self.unsubscribe(channel)
            raise

    async def head(self) -> Position:
        """The latest position in Redis's history (see redis_history.py)."""
        self._require_connected()
        try:
            return await self._history.head()
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"Redis could not read the history: {exc}") from exc

    async def recover(self, channel: Channel, since: Position) -> Recovered:
        """What reached ``channel`` after ``since``, from Redis's history."""
        self._require_connected()
        try:
            return await self._history.recover(channel, since)
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"Redis could not read the history: {exc}") from exc

    def _require_connected(self) -> None:
        if not self._connected or self._client is None:
            raise BrokerUnavailable("not connected to Redis")

    def unsubscribe(self, channel: Channel) -> None:
        """Release the channel's keys; UNSUBSCRIBE (in the background) those now unused."""
        gone = []
        for key in self._channel_keys(channel):
            count = self._interest.get(key, 0) - 1
            if count > 0:
                self._interest[key] = count
                continue
            self._interest.pop(key, None)
            self._ack_waiters.pop(key, None)  # Nobody is left waiting on it.
            gone.append(key)
        if gone and self._connected and self._pubsub is not None:
            self._spawn(self._pubsub.unsubscribe(*gone))

    # Keys

    def _channel_keys(self, channel: Channel) -> list[bytes]:
        # The channel's own pub/sub key, and the key of every subtree above it.
        return [self._prefix + key for key in channel_keys(channel)]

    # Listener

    async def _run(self) -> None:
        attempt = 0
        loop = asyncio.get_running_loop()
        while True:
            assert self._client is not None
            pubsub = self._client.pubsub()
            try:
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the listener must never die.
                if self._connected:
                    attempt = 0
                    self._lost_at = loop.time()
                    log.warning(
                        "Redis connection lost (%s): %s", redact_url(self.url), _describe(exc)
                    )
                elif attempt == 0:
                    log.warning(
                        "cannot reach Redis at %s (%s); retrying in the background",
                        redact_url(self.url),
                        _describe(exc),
                    )
                else:
                    log.debug("Redis still unreachable: %s", _describe(exc))
            finally:
                self._pubsub = None
                self._set_connected(False)
                await _close_pubsub(pubsub)
                # Idle pooled connections may point at a Redis that is gone: the
                # first PUBLISH on each would fail after Redis returns. Drop them.
                await _drop_idle_connections(self._client)
            delay = min(self._backoff_cap, self._backoff_base * 2**attempt)
            attempt += 1
            # Jitter keeps many processes from reconnecting in lockstep.
            await asyncio.sleep(random.uniform(delay / 2, delay))

    async def _listen(self, pubsub: PubSub) -> None:
        self._pubsub = pubsub
        keys = [self._control_key, *self._interest]
        # A new connection: acks owed by the old one will never come.
        self._unacked.clear()
        self._expect_acks(keys)
        await pubsub.subscribe(*keys)
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        probe_sent: float | None = None
        while True:
            message = await pubsub.get_message(timeout=self._tick)
            now = loop.time()
            if message is not None:
                last_heard, probe_sent = now, None
                self._handle(message)
            elif probe_sent is not None:
                if now - probe_sent > self._probe_timeout:
                    raise _Deaf(f"liveness probe not answered within {self._probe_timeout:g}s")
            elif now - last_heard >= self._probe_interval:
                probe_sent = now
                self._spawn(self._probe())

    async def _probe(self) -> None:
        assert self._client is not None
        await self._client.publish(self._control_key, b"probe")

    def _handle(self, message: dict[str, Any]) -> None:
        kind, key = message["type"], message["channel"]
        if kind == "message":
            if key == self._control_key:
                return  # A probe came back; hearing it was the point.
            try:
                publication = decode(message["data"])
            except MalformedEnvelope as exc:
                log.warning("ignoring a malformed message on Redis channel %r: %s", key, exc)
                return
            assert self._events is not None
            try:
                self._events.deliver(publication)
            except Exception:
                log.exception("delivering a publication failed")
        elif kind == "subscribe":
            self._acknowledge(key)
            if key == self._control_key:
                self._set_connected(True)

    def _expect_acks(self, keys: list[bytes]) -> None:
        loop = asyncio.get_running_loop()
        for key in keys:
            self._unacked[key] = self._unacked.get(key, 0) + 1
            if key not in self._ack_waiters:
                self._ack_waiters[key] = loop.create_future()

    def _acknowledge(self, key: bytes) -> None:
        remaining = self._unacked.get(key, 0) - 1
        if remaining > 0:
            self._unacked[key] = remaining
            return
        self._unacked.pop(key, None)
        waiter = self._ack_waiters.pop(key, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _set_connected(self, connected: bool) -> None:
        if connected == self._connected:
            return
        self._connected = connected
        if connected:
            if self._lost_at is None:
                log.info("Redis connected (%s)", redact_url(self.url))
            else:
                down = asyncio.get_running_loop().time() - self._lost_at
                log.info("Redis reconnected (%s) after %.1fs", redact_url(self.url), down)
                self.reconnects += 1
                self._lost_at = None
        if self._events is not None:
            self._events.broker_state_changed(connected)

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(_quietly(coro))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _quietly(coro: Awaitable[Any]) -> None:
    # Background sends fail only when the connection does, which the listener
    # notices and handles; their own errors carry nothing more.
    try:
        await coro
    except (RedisError, OSError) as exc:
        log.debug("background Redis command failed: %s", exc)


async def _drop_idle_connections(client: Redis) -> None:
    try:
        await client.connection_pool.disconnect(inuse_connections=False)
    except (RedisError, OSError) as exc:
        log.debug("dropping idle Redis connections failed: %s", exc)


async def _close_pubsub(pubsub: PubSub) -> None:
    try:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
    except (RedisError, OSError) as exc:
        log.debug("closing the Redis pub/sub connection failed: %s", exc)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
