"""One self-repairing pub/sub subscription (brokers/link.py), against a real Redis."""

from __future__ import annotations

import asyncio
import time

from redis.asyncio import Redis

from tornado_channels.brokers.link import Link

from ..helpers import RedisServer, run, until


class Recorder:
    """What a link reports: messages by key, and its connection's ups and downs."""

    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bytes]] = []
        self.states: list[bool] = []

    def message(self, key: bytes, data: bytes) -> None:
        self.messages.append((key, data))

    def state(self, up: bool) -> None:
        self.states.append(up)


def make_link(server: RedisServer, recorder: Recorder) -> tuple[Link, Redis]:
    client = Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=2)

    async def opener() -> Redis:
        return client

    link = Link(
        lambda: f"test redis {server.port}",
        opener,
        b"linktest:control",
        sharded=False,
        on_message=recorder.message,
        on_state=recorder.state,
        stray_pattern=b"linktest:*",
        probe_interval=0.3,
        probe_timeout=0.6,
        check_interval=5.0,
        subscribe_timeout=5.0,
        backoff_base=0.05,
        backoff_cap=0.5,
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
