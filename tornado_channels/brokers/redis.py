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

from ..core.channels import Channel
from ..core.history import HISTORY_AGE, HISTORY_SIZE, channel_keys
from ..core.publication import MalformedEnvelope, Position, Publication, Recovery, decode
from .base import Broker, BrokerEvents, BrokerUnavailable, PublishOutcomeUnknown
from .coalescer import PublishCoalescer
from .ledger import SUBSCRIBE, UNSUBSCRIBE, SubscriptionLedger
from .redis_history import RedisHistory

log = logging.getLogger("tornado_channels.redis")

#: Keys per SUBSCRIBE or UNSUBSCRIBE sent by a self-check.
_CHECK_CHUNK = 1000

#: Defaults (the command line's too: see settings.py).
PREFIX = "tornado_channels:"
TIMEOUT = 2.0
PROBE_INTERVAL = 2.0
CHECK_INTERVAL = 30.0


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
    :param check_interval: seconds between self-checks of the subscriptions
        Redis holds for this process against those it should (0: never).
    """

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = PREFIX,
        connect_timeout: float = 2.0,
        command_timeout: float = TIMEOUT,
        subscribe_timeout: float = 5.0,
        probe_interval: float = PROBE_INTERVAL,
        probe_timeout: float = TIMEOUT,
        backoff_base: float = 0.1,
        backoff_cap: float = 1.0,
        history_size: int = HISTORY_SIZE,
        history_age: float = HISTORY_AGE,
        check_interval: float = CHECK_INTERVAL,
    ) -> None:
        self.url = url
        self._prefix = prefix.encode("utf-8")
        node_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._control_key = self._prefix + b"n:" + node_id.encode("utf-8")
        # Never subscribed: UNSUBSCRIBE of it reports the connection's true count.
        self._baseline_key = self._control_key + b":baseline"
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
        # What local subscribers need, what Redis was told, and the replies
        # owed: every (UN)SUBSCRIBE goes through it, in order (see ledger.py).
        self._ledger = SubscriptionLedger()
        # The one task that sends the ledger's commands, when it has any.
        self._sender: asyncio.Task[None] | None = None
        # Key -> a future set (True) once Redis confirms its SUBSCRIBE, or
        # (False) when the connection is lost first.
        self._waiters: dict[bytes, asyncio.Future[bool]] = {}
        self._check_interval = check_interval
        self._check_due = False
        self._finding_strays = False
        # Keys some connection holds under our prefix, to UNSUBSCRIBE from
        # this one in case it holds them unasked (see _drop_strays).
        self._strays: list[bytes] | None = None
        self._coalescer = PublishCoalescer(self.publish_many)
        #: Times the listener has reconnected after losing its connection.
        self.reconnects = 0
        #: Subscriptions the self-check found Redis holding wrongly, and repaired.
        self.repairs = 0
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
        if self._sender is not None:
            tasks.append(self._sender)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, self._coalescer.stop(), return_exceptions=True)
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
        return await self._coalescer.publish(publication)

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

    def subscribe(self, channel: Channel) -> None:
        """Take the channel's keys; the sender SUBSCRIBEs those not yet held."""
        self._ledger.acquire(self._channel_keys(channel))
        self._kick()

    async def confirm(self, channel: Channel) -> None:
        """Wait for Redis to acknowledge the SUBSCRIBE of each of the channel's keys."""
        if not self._connected:
            raise BrokerUnavailable("not connected to Redis")
        loop = asyncio.get_running_loop()
        waiters = []
        for key in self._channel_keys(channel):
            if not self._ledger.confirmed(key):
                waiter = self._waiters.get(key)
                if waiter is None:
                    waiter = self._waiters[key] = loop.create_future()
                waiters.append(waiter)
        if not waiters:
            return
        done, late = await asyncio.wait(waiters, timeout=self._subscribe_timeout)
        if late:
            raise BrokerUnavailable("Redis did not confirm the subscription in time")
        if not all(waiter.result() for waiter in done):
            raise BrokerUnavailable("the Redis connection was lost while subscribing")

    async def head(self) -> Position:
        """The latest position in Redis's history (see redis_history.py)."""
        self._require_connected()
        try:
            return await self._history.head()
        except (RedisError, OSError) as exc:
            raise BrokerUnavailable(f"Redis could not read the history: {exc}") from exc

    async def recover(self, channel: Channel, since: Position) -> Recovery:
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
        """Release the channel's keys; the sender UNSUBSCRIBEs those no longer needed."""
        self._ledger.release(self._channel_keys(channel))
        self._kick()

    # Sending (UN)SUBSCRIBE: one task, in the ledger's order

    def _kick(self) -> None:
        """Make sure the sender runs if it has anything to send and a connection to send it on."""
        due = self._ledger.dirty or self._check_due or self._strays is not None
        if due and self._sender is None and self._pubsub is not None:
            self._sender = asyncio.ensure_future(self._send())

    async def _send(self) -> None:
        # One at a time, each awaited before the next is planned: Redis
        # receives them in the order they were decided.
        try:
            while (pubsub := self._pubsub) is not None:
                if self._ledger.dirty:
                    subscribe, unsubscribe = self._ledger.plan()
                    if subscribe:
                        await pubsub.subscribe(*subscribe)
                    if unsubscribe:
                        await pubsub.unsubscribe(*unsubscribe)
                elif self._strays is not None:
                    held, self._strays = self._strays, None
                    for chunk in _chunks(self._ledger.plan_strays(held), _CHECK_CHUNK):
                        await pubsub.unsubscribe(*chunk)
                elif self._check_due and self._ledger.settled:
                    self._check_due = False
                    keys = self._ledger.plan_check(self._baseline_key)
                    await pubsub.unsubscribe(self._baseline_key)
                    for chunk in _chunks(keys, _CHECK_CHUNK):
                        await pubsub.subscribe(*chunk)
                else:
                    return
        except (RedisError, OSError) as exc:
            # The listener notices the broken connection and starts over.
            log.debug("sending a subscription change failed: %s", exc)
        finally:
            self._sender = None

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
                self._strays = None
                self._fail_waiters()
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
        # A new connection holds nothing: everything wanted, in one SUBSCRIBE.
        await pubsub.subscribe(*self._ledger.reconnected([self._control_key]))
        self._pubsub = pubsub
        self._kick()  # What changed while that was being written.
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        next_check = last_heard + self._check_interval
        probe_sent: float | None = None
        while True:
            message = await pubsub.get_message(timeout=self._tick)
            now = loop.time()
            if self._check_interval and now >= next_check:
                next_check = now + self._check_interval
                self._check_due = True
                self._kick()
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
                self._events.received(publication)
            except Exception:
                log.exception("delivering a publication failed")
        elif kind in (SUBSCRIBE, UNSUBSCRIBE):
            self._acknowledged(kind, key, int(message["data"]))

    def _acknowledged(self, kind: str, key: bytes, count: int) -> None:
        """A (UN)SUBSCRIBE reply: release waiters, and act on what a self-check found."""
        ledger = self._ledger
        reply = ledger.acknowledge(kind, key, count)
        if reply.repaired or reply.stray:
            self.repairs += 1
            log.warning(
                "self-check: Redis %s the subscription to %r for this process; %s",
                "had dropped" if reply.repaired else "held an unwanted",
                key,
                "resubscribed" if reply.repaired else "unsubscribed",
            )
        elif reply.unexpected:
            log.debug("unexpected %s reply for %r", kind, key)
        if kind == SUBSCRIBE and ledger.confirmed(key):
            waiter = self._waiters.pop(key, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(True)
            if key == self._control_key:
                self._set_connected(True)
        if ledger.settled and ledger.count > ledger.held() and not self._finding_strays:
            # More subscriptions than asked for: find which, and drop them.
            self._finding_strays = True
            self._spawn(self._drop_strays())

    async def _drop_strays(self) -> None:
        """UNSUBSCRIBE whatever Redis has under our prefix that this process did not ask for."""
        assert self._client is not None
        pubsub = self._pubsub
        try:
            held = await self._client.pubsub_channels(self._prefix + b"*")
        finally:
            self._finding_strays = False
        if pubsub is not None and pubsub is self._pubsub:
            # Sent by the sender, in order with everything else.
            self._strays = [key for key in held if isinstance(key, bytes)]
            self._kick()

    def _fail_waiters(self) -> None:
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            if not waiter.done():
                waiter.set_result(False)

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


def _chunks(keys: list[bytes], size: int) -> list[list[bytes]]:
    return [keys[start : start + size] for start in range(0, len(keys), size)]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
