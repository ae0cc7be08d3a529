"""Redis faults under a real process and a steady publisher."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable

from tornado_channels.core.frames import CLOSE_TRY_AGAIN_LATER

from ..helpers import RedisServer, ServerProcess, connect, get, healthy, post, run

Start = Callable[..., ServerProcess]


def test_redis_killed_and_restarted_mid_stream(servers: Start, redis_server: RedisServer) -> None:
    """Redis killed (-9) under a 10/s publisher: 503s, a 1013 close, resubscribed in 2 s."""
    server = servers("--redis-url", redis_server.url)
    acked: list[tuple[int, float]] = []  # (sequence, when the 202 arrived)
    statuses: list[tuple[int, int, float]] = []

    async def scenario() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        before = await connect(server.ws_url + "/feed")
        stop = asyncio.Event()

        async def publisher() -> None:
            sequence = 0
            while not stop.is_set():
                response = await post(server.url + "/feed", str(sequence))
                statuses.append((sequence, response.code, loop.time()))
                if response.code == 202:
                    acked.append((sequence, loop.time()))
                sequence += 1
                await asyncio.sleep(0.1)

        async def read_until_closed(ws) -> list[int]:  # type: ignore[no-untyped-def]
            got = []
            while (message := await asyncio.wait_for(ws.read_message(), 15)) is not None:
                got.append(int(message))
            return got

        publishing = asyncio.ensure_future(publisher())
        reading_before = asyncio.ensure_future(read_until_closed(before))
        await asyncio.sleep(1.0)
        redis_server.kill()
        killed = loop.time()
        got_before = await reading_before
        assert before.close_code == CLOSE_TRY_AGAIN_LATER
        before.close()
        told_after = loop.time() - killed
        health = await get(server.url + "/_/health")
        assert health.code == 503
        assert json.loads(health.body)["connected"] is False
        await asyncio.sleep(1.5)
        redis_server.start()
        returned = loop.time()
        while not healthy(server.url):
            assert loop.time() - returned < 5, "never resubscribed"
            await asyncio.sleep(0.02)
        resubscribed = loop.time() - returned
        after = await connect(server.ws_url + "/feed")
        joined = loop.time()
        reading_after = asyncio.ensure_future(read_until_closed(after))
        await asyncio.sleep(1.5)
        stop.set()
        await publishing
        await asyncio.sleep(0.3)
        after.close()
        got_after = await reading_after

        # In order, no duplicates, nothing unacknowledged. Every publish
        # acknowledged well before the kill arrived (one Redis accepted in its
        # last instant may die in its output buffer: the 1013 says so).
        acked_seqs = {seq for seq, _ in acked}
        assert got_before == sorted(set(got_before))
        assert set(got_before) <= acked_seqs
        settled = [seq for seq, at in acked if at < killed - 0.2]
        assert got_before[: len(settled)] == settled
        # After the return: exactly what was acknowledged once it had joined.
        assert got_after == [seq for seq, at in acked if at > joined]
        # During the outage every publish was refused with 503, none accepted.
        outage = [code for _, code, at in statuses if killed + 0.2 < at < returned]
        assert outage, "no publish attempted during the outage"
        assert set(outage) == {503}, outage
        assert {code for _, code, _ in statuses} <= {202, 503}
        return {
            "told_after": told_after,
            "resubscribed": resubscribed,
            "refused": len(outage),
            "acked": len(acked),
        }

    figures = run(scenario())
    assert server.process is not None
    assert server.process.poll() is None, "the process exited"
    # Promptly (the reconnect backoff starts small), with room for a loaded machine.
    assert figures["resubscribed"] < 5.0, figures
    print(f"\nredis kill -9 figures: {figures}")


def test_publish_with_unknown_outcome_gets_a_distinct_status(
    servers: Start, redis_server: RedisServer
) -> None:
    """A POST that Redis does not answer in time gets 504 publish_outcome_unknown, not 503."""
    server = servers("--redis-url", redis_server.url, "--redis-timeout", "0.5")
    assert redis_server.process is not None
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        response = run(post(server.url + "/a", b"maybe"))
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    assert response.code == 504
    assert json.loads(response.body)["error"] == "publish_outcome_unknown"
    server.wait_healthy()
    again = run(post(server.url + "/a", b"again"))
    assert again.code == 202, again.body
