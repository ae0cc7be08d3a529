"""A master killed under load: nothing acknowledged goes silently missing, and delivery resumes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from tornado.httpclient import HTTPClientError
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClientConnection, WebSocketError

from tornado_channels.brokers.keys import KeyLayout
from tornado_channels.core.channels import Channel

from ..helpers import RedisMode, ServerProcess, connect, healthy, post, run, until

Start = Callable[..., ServerProcess]

pytestmark = pytest.mark.processes

#: Seconds between two publishes.
INTERVAL = 0.05


#: What a refused or dropped connection raises; anything else is a bug and fails the test.
CONNECTION_ERRORS = (OSError, StreamClosedError, HTTPClientError, WebSocketError, TimeoutError)


@dataclass
class Follower:
    """A subscriber that resumes from its last position after every drop, as a client should."""

    url: str
    received: dict[str, float] = field(default_factory=dict)
    # Every message in the order it came, duplicates included (received keeps the first).
    arrivals: list[str] = field(default_factory=list)
    # When each resume reported recovered: false.
    losses: list[float] = field(default_factory=list)
    position: str | None = None
    stopping: bool = False

    async def follow(self) -> None:
        while not self.stopping:
            query = f"?since={self.position}" if self.position else "?positions=1"
            try:
                ws = await connect(self.url + query, timeout=2)
            except CONNECTION_ERRORS:  # Refused while Redis is away: try again.
                await asyncio.sleep(0.1)
                continue
            await self._read(ws)
            ws.close()
            await asyncio.sleep(0.05)

    async def _read(self, ws: WebSocketClientConnection) -> None:
        while not self.stopping:
            try:
                text = await asyncio.wait_for(ws.read_message(), 0.5)
            except asyncio.TimeoutError:
                continue
            if text is None:
                return
            message = json.loads(text)
            if "recovered" in message:
                if not message["recovered"]:
                    self.losses.append(time.monotonic())
            else:
                self.received.setdefault(message["data"], time.monotonic())
                self.arrivals.append(message["data"])
            self.position = message["position"]


@pytest.mark.parametrize("own_redis_mode", ["sentinel", "cluster"], indirect=True)
# The Redis deployment first: it is then torn down last, after the servers stopped.
def test_killing_a_master_loses_nothing_silently(own_redis_mode: RedisMode, servers: Start) -> None:
    """Under a publish every 50 ms, a killed master: every 202 is delivered or reported lost."""
    mode = own_redis_mode
    options = ["--redis-probe-interval", "0.5", "--redis-timeout", "1"]
    a = servers(*mode.args(), *options)
    b = servers(*mode.args(), *options)
    layout = KeyLayout(mode.prefix.encode(), 16)
    partition = layout.channel_partition(Channel("orders/1"))
    followers = [Follower(a.ws_url + "/orders/1"), Follower(b.ws_url + "/orders/1")]

    async def scenario() -> float:
        tasks = [asyncio.ensure_future(follower.follow()) for follower in followers]
        acked: dict[str, float] = {}
        killed_at = resumed_at = 0.0
        number = 0
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                data = f"m{number}"
                target = (a, b)[number % 2]
                number += 1
                sent_at = time.monotonic()
                try:
                    answer = await post(target.url + "/orders/1", data)
                except CONNECTION_ERRORS:  # A connection error is no acknowledgement.
                    answer = None
                if answer is not None and answer.code == 202:
                    acked[data] = time.monotonic()
                    if killed_at and sent_at > killed_at and not resumed_at:
                        resumed_at = time.monotonic()
                if number == 20:
                    killed_at = time.monotonic()
                    # On a cluster, the master of the channel's partition.
                    mode.kill_master(wait=False, slot=layout.slot(partition))
                if resumed_at and time.monotonic() - resumed_at > 2:
                    break
                await asyncio.sleep(INTERVAL)
            assert resumed_at, "publishing never resumed"
            # What was acknowledged last reaches both (bounded wait).
            last = max(acked, key=acked.__getitem__)
            for _ in range(100):
                if all(last in follower.received for follower in followers):
                    break
                await asyncio.sleep(0.1)
        finally:
            for follower in followers:
                follower.stopping = True
            await asyncio.gather(*tasks, return_exceptions=True)
        for follower in followers:
            assert last in follower.received, (follower, a.output()[-2000:], b.output()[-2000:])
            twice = [data for data in follower.received if follower.arrivals.count(data) > 1]
            assert not twice, f"{follower.url} received {twice[:5]} more than once"
            # Publishes are numbered m0, m1, ... in order: each arrives after those before it.
            numbers = [int(data[1:]) for data in follower.arrivals]
            assert numbers == sorted(numbers), f"{follower.url}: out of order"
            for data, at in acked.items():
                # Delivered, or a later resume said something was lost.
                assert data in follower.received or any(loss > at for loss in follower.losses), (
                    data,
                    follower.url,
                )
        # Every partition's link follows its master, not only the one published to.
        await until(lambda: healthy(a.url) and healthy(b.url), timeout=15, what="health 200 again")
        delivered_again = min(
            at
            for follower in followers
            for data, at in follower.received.items()
            if acked.get(data, 0) > killed_at
        )
        return delivered_again - killed_at

    resumed_after = run(scenario(), timeout=120)
    # The new master took over with a new epoch: resuming across it says so.
    assert all(follower.losses for follower in followers)
    print(f"\n{mode.name}: delivery resumed {resumed_after:.1f}s after the master was killed")
