"""One pub/sub connection to one Redis master, kept subscribed to what the process needs.

A :class:`Link` owns a pub/sub connection, the ledger of what it should
hold (ledger.py), and the one task that sends its (UN)SUBSCRIBEs in order.
A listener task reads the connection; it never dies silently: on any error
it logs, reports itself disconnected, and reconnects with capped
exponential backoff and jitter, resubscribing to everything.  When it has
heard nothing for a while it publishes a probe to its own control channel
and reconnects if the probe does not come back: a frozen Redis or a silent
partition cannot leave it deaf.  Every ``check_interval`` it checks that
Redis holds exactly what it should, and repairs what it does not.

A standalone or Sentinel broker has one link; a cluster broker one per
partition, each on the master that serves the partition's slot, with
sharded commands (``SSUBSCRIBE``), whose channels all share that slot.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Sequence
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from .ledger import SUBSCRIBE, UNSUBSCRIBE, SubscriptionLedger
from .settings import BrokerSettings, Reconnection

log = logging.getLogger("tornado_channels.redis")

#: Keys per SUBSCRIBE or UNSUBSCRIBE sent by a self-check.
_CHECK_CHUNK = 1000

# Reply types of plain and sharded pub/sub, as the ledger names them.
_KINDS = {
    "subscribe": SUBSCRIBE,
    "unsubscribe": UNSUBSCRIBE,
    "ssubscribe": SUBSCRIBE,
    "sunsubscribe": UNSUBSCRIBE,
}


class _Deaf(Exception):
    """The liveness probe did not come back in time."""


class _Moved(Exception):
    """Redis took back a subscription it holds for us: its slot moved to another master."""


class Master(Protocol):
    """Where a link connects: the topology (topology.py), or a test's stand-in."""

    def describe(self, partition: int) -> str:
        """Where ``partition``'s master is, for logs."""
        ...

    async def open(self, partition: int) -> Redis:
        """A client of the master ``partition``'s link should use now (resolved afresh)."""
        ...


class LinkListener(Protocol):
    """Who hears what a link receives: the broker."""

    def link_received(self, partition: int, key: bytes, data: bytes) -> None:
        """A message arrived on pub/sub channel ``key`` of ``partition``'s link."""
        ...

    def link_changed(self, partition: int, connected: bool) -> None:
        """``partition``'s link now holds its subscriptions (True), or lost them (False)."""
        ...


class Link:
    """A self-repairing pub/sub subscription to the master of one partition.

    :param control_key: its own channel, where its liveness probes go.
    :param stray_pattern: what this process's keys match, to find subscriptions
        a connection holds unasked.
    :param settings: the probe interval and timeout, and the self-check's interval.
    """

    def __init__(
        self,
        master: Master,
        partition: int,
        listener: LinkListener,
        *,
        control_key: bytes,
        stray_pattern: bytes,
        sharded: bool,
        settings: BrokerSettings,
        reconnection: Reconnection,
    ) -> None:
        self._master = master
        self.partition = partition
        self._owner = listener
        self._control_key = control_key
        # Never subscribed: UNSUBSCRIBE of it reports the connection's true count.
        self._baseline_key = control_key + b":baseline"
        self._sharded = sharded
        self._stray_pattern = stray_pattern
        self._probe_interval = settings.redis_probe_interval
        # A probe is a command like any other: it has the command timeout.
        self._probe_timeout = settings.redis_timeout
        self._tick = min(self._probe_interval, self._probe_timeout) / 2
        self._check_interval = settings.redis_check_interval
        self._subscribe_timeout = reconnection.subscribe_timeout
        self._backoff_base = reconnection.backoff_base
        self._backoff_cap = reconnection.backoff_cap

        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._listener: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.connected = False
        # What local subscribers need, what Redis was told, and the replies
        # owed: every (UN)SUBSCRIBE goes through it, in order (see ledger.py).
        self._ledger = SubscriptionLedger()
        # The one task that sends the ledger's commands, when it has any.
        self._sender: asyncio.Task[None] | None = None
        # Key -> a future set (True) once Redis confirms its SUBSCRIBE, or
        # (False) when the connection is lost first.
        self._waiters: dict[bytes, asyncio.Future[bool]] = {}
        self._check_due = False
        self._finding_strays = False
        # Keys some connection holds under our prefix, to UNSUBSCRIBE from
        # this one in case it holds them unasked (see _drop_strays).
        self._strays: list[bytes] | None = None
        #: Times this link reconnected after losing its connection.
        self.reconnects = 0
        #: Subscriptions the self-check found Redis holding wrongly, and repaired.
        self.repairs = 0
        self._lost_at: float | None = None

    @property
    def name(self) -> str:
        """Where this link connects, for logs (its master may change)."""
        return self._master.describe(self.partition)

    def start(self) -> None:
        """Start the listener task; it connects (and reconnects) on its own."""
        self._listener = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Cancel the listener and every background send."""
        tasks = [*self._background]
        for task in (self._listener, self._sender):
            if task is not None:
                tasks.append(task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._listener = None
        self.connected = False

    def acquire(self, keys: Sequence[bytes]) -> None:
        """Take ``keys``; the sender SUBSCRIBEs those not yet held."""
        self._ledger.acquire(keys)
        self._kick()

    def release(self, keys: Sequence[bytes]) -> None:
        """Release ``keys``; the sender UNSUBSCRIBEs those no longer needed."""
        self._ledger.release(keys)
        for key in keys:
            # A confirmation nobody waits for any more (its wait timed out):
            # its SUBSCRIBE is cancelled, so no reply would ever free it.
            if not self._ledger.wanted(key):
                waiter = self._waiters.pop(key, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(False)
        self._kick()

    async def confirm(self, keys: Sequence[bytes]) -> bool | None:
        """Wait for Redis to acknowledge the SUBSCRIBE of each of ``keys``.

        Returns True once all are, False if the connection was lost first, and
        None if that did not happen within the subscribe timeout.
        """
        loop = asyncio.get_running_loop()
        waiters = []
        for key in keys:
            if not self._ledger.confirmed(key):
                waiter = self._waiters.get(key)
                if waiter is None:
                    waiter = self._waiters[key] = loop.create_future()
                waiters.append(waiter)
        if not waiters:
            return True
        done, late = await asyncio.wait(waiters, timeout=self._subscribe_timeout)
        if late:
            return None
        return all(waiter.result() for waiter in done)

    # Sending (UN)SUBSCRIBE: one task, in the ledger's order

    def _kick(self) -> None:
        """Make sure the sender runs if it has anything to send and a connection to send it on."""
        due = self._ledger.dirty or self._check_due or self._strays is not None
        if due and self._sender is None and self._pubsub is not None:
            self._sender = asyncio.ensure_future(self._send())

    async def _subscribe(self, pubsub: PubSub, keys: Sequence[bytes]) -> None:
        if self._sharded:
            await pubsub.ssubscribe(*keys)
        else:
            await pubsub.subscribe(*keys)

    async def _unsubscribe(self, pubsub: PubSub, keys: Sequence[bytes]) -> None:
        if self._sharded:
            await pubsub.sunsubscribe(*keys)
        else:
            await pubsub.unsubscribe(*keys)

    async def _send(self) -> None:
        # One at a time, each awaited before the next is planned: Redis
        # receives them in the order they were decided.
        try:
            while (pubsub := self._pubsub) is not None:
                if self._ledger.dirty:
                    subscribe, unsubscribe = self._ledger.plan()
                    if subscribe:
                        await self._subscribe(pubsub, subscribe)
                    if unsubscribe:
                        await self._unsubscribe(pubsub, unsubscribe)
                elif self._strays is not None:
                    held, self._strays = self._strays, None
                    for chunk in _chunks(self._ledger.plan_strays(held), _CHECK_CHUNK):
                        await self._unsubscribe(pubsub, chunk)
                elif self._check_due and self._ledger.settled:
                    self._check_due = False
                    keys = self._ledger.plan_check(self._baseline_key)
                    await self._unsubscribe(pubsub, [self._baseline_key])
                    for chunk in _chunks(keys, _CHECK_CHUNK):
                        await self._subscribe(pubsub, chunk)
                else:
                    return
        except (RedisError, OSError) as exc:
            # The listener notices the broken connection and starts over.
            log.debug("sending a subscription change failed: %s", exc)
        finally:
            self._sender = None

    # Listener

    async def _run(self) -> None:
        attempt = 0
        loop = asyncio.get_running_loop()
        while True:
            pubsub: PubSub | None = None
            try:
                self._client = await self._master.open(self.partition)
                pubsub = self._client.pubsub()
                await self._listen(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the listener must never die.
                if self.connected:
                    attempt = 0
                    self._lost_at = loop.time()
                    log.warning("Redis connection lost (%s): %s", self.name, _describe(exc))
                elif attempt == 0:
                    log.warning(
                        "cannot reach Redis (%s): %s; retrying in the background",
                        self.name,
                        _describe(exc),
                    )
                else:
                    log.debug("Redis still unreachable (%s): %s", self.name, _describe(exc))
            finally:
                self._pubsub = None
                self._strays = None
                self._fail_waiters()
                self._set_connected(False)
                if pubsub is not None:
                    await _close_pubsub(pubsub)
                if self._client is not None:
                    # Idle pooled connections may point at a Redis that is gone:
                    # the first command on each would fail after it returns.
                    await _drop_idle_connections(self._client)
            delay = min(self._backoff_cap, self._backoff_base * 2**attempt)
            attempt += 1
            # Jitter keeps many processes from reconnecting in lockstep.
            await asyncio.sleep(random.uniform(delay / 2, delay))

    async def _listen(self, pubsub: PubSub) -> None:
        # A new connection holds nothing: everything wanted, in one SUBSCRIBE.
        await self._subscribe(pubsub, self._ledger.reconnected([self._control_key]))
        self._pubsub = pubsub
        self._kick()  # What changed while that was being written.
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        next_check = last_heard + self._check_interval
        probe_sent: float | None = None
        while True:
            asked = loop.time()
            message = await pubsub.get_message(timeout=self._tick)
            now = loop.time()
            if probe_sent is not None and now - asked > self._tick:
                # The loop was away past the tick (a long fan-out, a process starved of
                # CPU): that is not Redis's silence. The expired timeout may also run
                # before a reply that was ready all along (uvloop runs timers first).
                probe_sent += now - asked - self._tick
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
        if self._sharded:
            await self._client.spublish(self._control_key, b"probe")
        else:
            await self._client.publish(self._control_key, b"probe")

    def _handle(self, message: dict[str, Any]) -> None:
        kind, key = message["type"], message["channel"]
        if kind in ("message", "smessage"):
            if key == self._control_key:
                return  # A probe came back; hearing it was the point.
            try:
                self._owner.link_received(self.partition, key, message["data"])
            except Exception:
                log.exception("delivering a publication failed")
        elif kind in _KINDS:
            self._acknowledged(_KINDS[kind], key, int(message["data"]))

    def _acknowledged(self, kind: str, key: bytes, count: int) -> None:
        """A (UN)SUBSCRIBE reply: release waiters, and act on what a self-check found."""
        ledger = self._ledger
        reply = ledger.acknowledge(kind, key, count)
        if reply.unexpected and kind == UNSUBSCRIBE and self._sharded and ledger.wanted(key):
            # Redis unsubscribes a shard channel by itself when its slot
            # moves: everything on this link must move with it.
            raise _Moved(f"Redis dropped the shard channel {key!r}: its slot moved")
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
        """UNSUBSCRIBE whatever Redis has under our prefix that this link did not ask for."""
        assert self._client is not None
        pubsub = self._pubsub
        try:
            if self._sharded:
                held = await self._client.execute_command(
                    "PUBSUB", "SHARDCHANNELS", self._stray_pattern
                )
            else:
                held = await self._client.pubsub_channels(self._stray_pattern)
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
        if connected == self.connected:
            return
        self.connected = connected
        if connected:
            if self._lost_at is None:
                log.info("Redis connected (%s)", self.name)
            else:
                down = asyncio.get_running_loop().time() - self._lost_at
                log.info("Redis reconnected (%s) after %.1fs", self.name, down)
                self.reconnects += 1
                self._lost_at = None
        self._owner.link_changed(self.partition, connected)

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
        await pubsub.aclose()
    except (RedisError, OSError) as exc:
        log.debug("closing the Redis pub/sub connection failed: %s", exc)


def _chunks(keys: list[bytes], size: int) -> list[list[bytes]]:
    return [keys[start : start + size] for start in range(0, len(keys), size)]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
