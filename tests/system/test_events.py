"""Lifecycle events on Redis: every one delivered, in order per channel, whatever dies."""

from __future__ import annotations

import re
import signal
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from ..helpers import RedisMode, ServerProcess, connect, get, hang_up, run, until
from ..helpers.events_backend import EventsBackend
from ..web.test_tokens import SECRET, mint

Start = Callable[..., ServerProcess]

pytestmark = pytest.mark.processes

TOKENS = ("--token-secret", SECRET, "--public", "/", "--presence-ttl", "2")


def flags(mode: RedisMode, backend: EventsBackend, *extra: str) -> list[str]:
    return [*mode.args(), *TOKENS, "--events-url", backend.url, *extra]


def as_user(url: str, user: str) -> str:
    return f"{url}?token={mint(['/'], sub=user, ttl=600)}"


def lifecycle(user: str | None, times: int = 1) -> Counter[tuple[str, str | None]]:
    """The events of ``times`` connections of ``user`` that came and went on one channel."""
    kinds = ("connect", "subscribe", "unsubscribe", "disconnect")
    return Counter({(kind, user): times for kind in kinds})


def in_order(sequence: list[tuple[str, str | None]], *expected: tuple[str, str | None]) -> bool:
    """Whether ``expected`` occur in ``sequence`` in that order (others may come between)."""
    rest = iter(sequence)
    return all(item in rest for item in expected)


async def closing(backend: EventsBackend, scenario: Coroutine[Any, Any, None]) -> None:
    """Run ``scenario``, then stop ``backend`` however it ended."""
    try:
        await scenario
    finally:
        await backend.stop()


def offered(backend: EventsBackend) -> set[tuple[str, str | None]]:
    return {(e["type"], e["user"]) for e in backend.offered}


async def metric(server: ServerProcess, name: str) -> float:
    body = (await get(server.url + "/_/metrics")).body.decode()
    found = re.search(rf"^tornado_channels_{name} (\S+)$", body, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize("redis_mode", ["standalone"], indirect=True)
def test_two_workers_deliver_every_event_once_in_order_through_a_backend_outage(
    servers: Start, redis_mode: RedisMode
) -> None:
    """Two workers; a backend refusing, then failing, then up: every event, in channel order."""
    backend = EventsBackend()  # Bound, not listening: connections are refused.
    a = servers(*flags(redis_mode, backend))
    b = servers(*flags(redis_mode, backend))

    async def scenario() -> None:
        first = await connect(as_user(a.ws_url + "/room/1", "u1"))
        second = await connect(as_user(b.ws_url + "/room/1", "u1"))
        anonymous = await connect(b.ws_url + "/room/1")
        other = await connect(as_user(a.ws_url + "/hall", "u2"))
        backend.status = 503
        backend.start()
        # The joins stored (presence publishes changes debounced: a subscription gone
        # before that makes neither join nor leave), and offered again and again.
        await until(
            lambda: {("join", "u1"), ("join", "u2")} <= offered(backend) and backend.attempts >= 2,
            20,
            "both joins offered to a failing backend",
        )
        for ws in (first, second, anonymous, other):
            await hang_up(ws)
        backend.status = 200
        await backend.has(14, channel="room/1")
        await backend.has(6, channel="hall")
        expected = lifecycle("u1", 2) + lifecycle(None)
        expected.update({("join", "u1"): 1, ("leave", "u1"): 1})
        assert backend.kinds("room/1") == expected
        room = backend.sequence("room/1")
        assert in_order(room, ("connect", "u1"), ("subscribe", "u1"), ("join", "u1"))
        assert in_order(room, ("subscribe", "u1"), ("subscribe", "u1"), ("unsubscribe", "u1"))
        assert in_order(room, ("unsubscribe", "u1"), ("unsubscribe", "u1"), ("leave", "u1"))
        assert backend.sequence("hall") == [
            ("connect", "u2"),
            ("subscribe", "u2"),
            ("join", "u2"),
            ("unsubscribe", "u2"),
            ("disconnect", "u2"),
            ("leave", "u2"),
        ]

    run(closing(backend, scenario()), timeout=60)


@pytest.mark.parametrize("redis_mode", ["standalone", "cluster"], indirect=True)
def test_a_killed_worker_s_user_leaves_and_its_stored_events_arrive_from_a_survivor(
    servers: Start, redis_mode: RedisMode
) -> None:
    """Kill -9 of the lease holder, a user's only one: a survivor delivers all, then its leave."""
    backend = EventsBackend()
    c = servers(*flags(redis_mode, backend))  # First: it takes the leases.
    a = servers(*flags(redis_mode, backend))
    servers(*flags(redis_mode, backend))  # A third: two survive.

    async def scenario() -> None:
        backend.start()
        kept = await connect(as_user(a.ws_url + "/room/9", "u1"))
        await backend.has(3, channel="room/9")
        backend.status = 503  # Stored, not delivered: mid-stream when the holder dies.
        doomed = await connect(as_user(c.ws_url + "/room/9", "u9"))
        # Its join stored too (by its presence beat), then it dies.
        await until(
            lambda: {"type": "join", "user": "u9"}.items() <= backend.offered[-1].items(),
            20,
            "u9's join offered",
        )
        c.terminate(signal.SIGKILL)
        backend.status = 200
        await until(
            lambda: ("leave", "u9") in backend.kinds("room/9"), 20, "u9's leave from a survivor"
        )
        assert backend.sequence("room/9") == [
            ("connect", "u1"),
            ("subscribe", "u1"),
            ("join", "u1"),
            ("connect", "u9"),
            ("subscribe", "u9"),
            ("join", "u9"),
            ("leave", "u9"),
        ]
        by_type = {(e["type"], e["user"]): e for e in backend.unique().values()}
        # Written by a survivor, on behalf of the dead process whose tally it subtracted.
        assert by_type["leave", "u9"]["process"] == by_type["connect", "u9"]["process"]
        doomed.close()
        await hang_up(kept)
        await backend.has(10, channel="room/9")
        backend.unique()  # Duplicates, if any, carry the same id and body.

    run(closing(backend, scenario()), timeout=60)


@pytest.mark.parametrize("redis_mode", ["standalone"], indirect=True)
def test_past_the_backlog_cap_the_oldest_events_are_dropped_and_counted(
    servers: Start, redis_mode: RedisMode
) -> None:
    """With the backend down and a cap of 5, 20 events leave the newest 5 and count 15 dropped."""
    backend = EventsBackend()
    a = servers(*flags(redis_mode, backend, "--events-max-backlog", "5"))

    async def scenario() -> None:
        clients = [await connect(a.ws_url + f"/feed/{n}") for n in range(10)]
        await until(lambda: metric(a, "events_dropped_total"), 10, "drops counted")

        async def counted() -> bool:
            return await metric(a, "events_dropped_total") == 15

        await until(counted, 10, "15 dropped")
        backend.start()
        await backend.has(5)
        await until(lambda: metric(a, "events_delivered_total"), 10, "delivered counted")
        assert [(e["type"], e["channel"]) for e in backend.unique().values()] == [
            ("subscribe", "feed/7"),
            ("connect", "feed/8"),
            ("subscribe", "feed/8"),
            ("connect", "feed/9"),
            ("subscribe", "feed/9"),
        ]
        for ws in clients:
            await hang_up(ws)

    run(closing(backend, scenario()), timeout=60)
