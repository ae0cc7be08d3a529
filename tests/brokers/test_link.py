"""One self-repairing pub/sub subscription (brokers/link.py), against a real Redis."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from tornado_channels.brokers.link import Link
from tornado_channels.brokers.settings import BrokerSettings, Reconnection

from ..helpers import RedisServer, run, until


class Recorder:
    """What a link reports (a LinkListener): messages by key, and its connection's ups and downs."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bytes]] = []
        self.states: list[bool] = []
        #: The partitions named in reports: only the link's own.
        self.partitions: set[int] = set()

    def link_received(self, partition: int, key: bytes, data: bytes) -> None:
        self.partitions.add(partition)
        self.messages.append((key, data))

    def link_changed(self, partition: int, connected: bool) -> None:
        self.partitions.add(partition)
        self.states.append(connected)


#: The partition the test link carries: not 0, so a link that mixed them up would show.
PARTITION = 3


class OneServer:
    """The link's Master: one test Redis, whatever the partition."""

    def __init__(self, server: RedisServer, client: Redis) -> None:
        self.server = server
        self.client = client
        self.opened: list[int] = []

    def describe(self, partition: int) -> str:
        return f"test redis {self.server.port}"

    async def open(self, partition: int) -> Redis:
        self.opened.append(partition)
        return self.client


def make_link(server: RedisServer, recorder: Recorder) -> tuple[Link, Redis]:
    client = Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=2)
    link = Link(
        OneServer(server, client),
        PARTITION,
        recorder,
        control_key=b"linktest:control",
        stray_pattern=b"linktest:*",
        sharded=False,
        settings=BrokerSettings(
            redis_probe_interval=0.3, redis_timeout=0.6, redis_check_interval=5.0
        ),
        reconnection=Reconnection(subscribe_timeout=5.0, backoff_base=0.05, backoff_cap=0.5),
    )
    return link, client


def subscribers(server: RedisServer, key: str) -> int:
    """How many connections Redis has subscribed to ``key``."""
    lines = server.cli("PUBSUB", "NUMSUB", key).split()
    return int(lines[1])


def test_a_key_is_subscribed_confirmed_delivered_and_released(redis_server: RedisServer) -> None:
    """Acquire + confirm: Redis holds the subscription and its messages arrive; release drops it."""

    async def scenario() -> None:
        recorder = Recorder()
        link, client = make_link(redis_server, recorder)
        link.start()
        await until(lambda: link.connected, what="link connected")
        link.acquire([b"linktest:a"])
        assert await link.confirm([b"linktest:a"]) is True
        assert subscribers(redis_server, "linktest:a") == 1
        redis_server.cli("PUBLISH", "linktest:a", "hello")
        await until(lambda: recorder.messages, what="the message")
        assert recorder.messages == [(b"linktest:a", b"hello")]
        assert recorder.partitions == {PARTITION}
        link.release([b"linktest:a"])
        await until(lambda: subscribers(redis_server, "linktest:a") == 0, what="unsubscribed")
        await link.stop()
        await client.aclose()

    run(scenario())


def test_a_key_held_twice_stays_until_released_twice(redis_server: RedisServer) -> None:
    """Two local holders of one key: one SUBSCRIBE, kept until the last one releases it."""

    async def scenario() -> None:
        recorder = Recorder()
        link, client = make_link(redis_server, recorder)
        link.start()
        link.acquire([b"linktest:b"])
        link.acquire([b"linktest:b"])
        assert await link.confirm([b"linktest:b"]) is True
        link.release([b"linktest:b"])
        await asyncio.sleep(0.3)  # Time for a wrong UNSUBSCRIBE to reach Redis.
        assert subscribers(redis_server, "linktest:b") == 1
        link.release([b"linktest:b"])
        await until(lambda: subscribers(redis_server, "linktest:b") == 0, what="unsubscribed")
        await link.stop()
        await client.aclose()

    run(scenario())


def test_after_redis_restarts_the_link_says_so_and_subscribes_again(
    redis_server: RedisServer,
) -> None:
    """Kill -9 then a restart: on_state(False), then True, and the held key is subscribed again."""

    async def scenario() -> None:
        recorder = Recorder()
        link, client = make_link(redis_server, recorder)
        link.start()
        link.acquire([b"linktest:c"])
        assert await link.confirm([b"linktest:c"]) is True
        redis_server.kill()
        await until(lambda: False in recorder.states, timeout=10, what="the loss reported")
        assert not link.connected
        redis_server.start()
        await until(lambda: recorder.states[-1] is True, timeout=10, what="reconnected")
        await until(lambda: subscribers(redis_server, "linktest:c") == 1, what="resubscribed")
        redis_server.cli("PUBLISH", "linktest:c", "after")
        await until(lambda: (b"linktest:c", b"after") in recorder.messages, what="delivered")
        assert link.reconnects >= 1
        await link.stop()
        await client.aclose()

    run(scenario())


def test_a_stalled_event_loop_is_not_taken_for_a_silent_redis(redis_server: RedisServer) -> None:
    """The loop blocked past the probe timeout as a probe goes out: no reconnect, no loss."""

    async def scenario() -> None:
        recorder = Recorder()
        link, client = make_link(redis_server, recorder)
        probe = link._probe
        stalls: list[float] = []
        probes: list[float] = []

        async def stall_then_probe() -> None:
            probes.append(time.monotonic())
            if len(stalls) < 2:
                # The probe counts as sent; the whole loop now stalls (a long fan-out on a
                # busy machine) for longer than the probe timeout (0.6 s), then sends it.
                started = time.monotonic()
                time.sleep(1.0)  # noqa: ASYNC251 - the point: the whole loop blocks
                stalls.append(time.monotonic() - started)
            await probe()

        link._probe = stall_then_probe  # type: ignore[method-assign]
        link.start()
        # A probe goes out only once the one before was answered, and the listener
        # would have given up on the stalled ones first.
        await until(lambda: len(probes) >= 4, timeout=10, what="two probes after the stalls")
        assert link.reconnects == 0
        assert recorder.states == [True]
        await link.stop()
        await client.aclose()

    run(scenario())
