"""The deployment shape: workers under supervisord, nginx in front, one Redis."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection

from tornado_channels.core.frames import CLOSE_GOING_AWAY

from ..helpers import (
    DEPLOY,
    WAIT,
    Deployment,
    EventStream,
    closed,
    connect,
    get,
    hang_up,
    healthy,
    needs_nginx,
    next_json,
    post,
    receive,
    run,
    silent,
)

Deploy = Callable[..., Deployment]

pytestmark = needs_nginx


def close_all(*clients: WebSocketClientConnection) -> None:
    for client in clients:
        client.close()


def test_post_anywhere_reaches_subscribers_everywhere(deployment: Deploy) -> None:
    """A POST to nginx or any worker reaches subscribers via nginx /ws/, nginx / and each worker."""
    deployed = deployment()

    async def scenario() -> None:
        subscribers = [
            await connect(deployed.ws_url + "/ws/users/1"),
            await connect(deployed.ws_url + "/users/1"),
            *[
                await connect(deployed.worker_url(n, "ws") + "/users/1")
                for n in range(deployed.workers)
            ],
        ]
        targets = [deployed.url] + [deployed.worker_url(n) for n in range(deployed.workers)]
        for target in targets:
            response = await post(target + "/users/1", f"via {target}")
            assert response.code == 202, response.body
            for ws in subscribers:
                assert await receive(ws) == f"via {target}"
        close_all(*subscribers)

    run(scenario())


def test_a_batch_through_nginx_reaches_every_worker(deployment: Deploy) -> None:
    """A batch POSTed to nginx reaches subscribers on each worker; past its limit, a JSON 413."""
    deployed = deployment(
        TORNADO_CHANNELS_MAX_MESSAGE_SIZE="300", TORNADO_CHANNELS_MAX_BATCH_BYTES="2000"
    )

    async def scenario() -> None:
        subscribers = [
            await connect(deployed.worker_url(n, "ws") + f"/room/{n}")
            for n in range(deployed.workers)
        ]
        messages = [{"channel": f"room/{n}", "data": f"to {n}"} for n in range(deployed.workers)]
        # A body larger than one message may be (300 bytes), within a batch's limit.
        messages += [{"channel": "room/", "data": "x" * 250}] * 3
        body = json.dumps({"messages": messages})
        response = await post(deployed.url + "/_/publish", body)
        assert response.code == 202, response.body
        assert json.loads(response.body)["published"] == deployed.workers + 3
        for n, ws in enumerate(subscribers):
            assert await receive(ws) == f"to {n}"
            for _ in range(3):
                assert await receive(ws) == "x" * 250
        big = await post(deployed.url + "/_/publish", b"x" * 2001)
        assert big.code == 413
        assert json.loads(big.body)["error"] == "batch_too_large"
        close_all(*subscribers)

    run(scenario())


def test_nginx_keeps_names_requests_and_errors_intact(deployment: Deploy) -> None:
    """Through nginx: encoded names survive /ws/, Host is forwarded, and refusals are JSON."""
    deployed = deployment(TORNADO_CHANNELS_MAX_MESSAGE_SIZE="100")

    async def scenario() -> None:
        ws = await connect(deployed.ws_url + "/ws/caf%C3%A9/1")
        await post(deployed.worker_url(0) + "/caf%c3%a9/1", b"coffee")
        assert await receive(ws) == "coffee"
        bad = await get(deployed.url + "/ws/a%2Fb")
        assert bad.code == 400
        assert json.loads(bad.body)["error"] == "invalid_channel"
        dots = await post(deployed.url + "/ws/a/%2e%2e/b", b"x")
        assert dots.code == 400
        big = await post(deployed.url + "/a", b"x" * 101)
        assert big.code == 413
        assert json.loads(big.body)["error"] == "message_too_large"
        page = await get(deployed.url + "/users/1")
        assert f"curl {deployed.url}/users/1" in page.body.decode()
        await hang_up(ws)

    run(scenario())


def test_restarting_one_worker_leaves_the_other_delivering(deployment: Deploy) -> None:
    """While supervisorctl restarts one worker, the other delivers and nginx takes new clients."""
    deployed = deployment()

    async def scenario() -> None:
        on_second = await connect(deployed.worker_url(1, "ws") + "/room")
        restart = asyncio.ensure_future(
            asyncio.to_thread(deployed.ctl, "restart", deployed.worker_name(0))
        )
        delivered = 0
        while not restart.done():
            response = await post(deployed.worker_url(1) + "/room", f"m{delivered}")
            assert response.code == 202
            assert await receive(on_second) == f"m{delivered}"
            delivered += 1
            fresh = await connect(deployed.ws_url + "/ws/room")
            fresh.close()
            await asyncio.sleep(0.05)
        assert "started" in await restart, await restart
        assert delivered > 0
        # The restarted worker is back in the group.
        assert healthy(deployed.worker_url(0))
        through_nginx = await post(deployed.url + "/room", b"after restart")
        assert through_nginx.code == 202
        assert await receive(on_second, timeout=WAIT) == "after restart"
        await hang_up(on_second)

    run(scenario())


def test_killed_worker_is_restarted_and_nginx_fails_over(deployment: Deploy) -> None:
    """After kill -9 of a worker, every POST through nginx succeeds and supervisor revives it."""
    deployed = deployment()
    victim = deployed.pid(deployed.worker_name(0))

    async def scenario() -> float:
        listener = await connect(deployed.worker_url(1, "ws") + "/news")
        os.kill(victim, signal.SIGKILL)
        loop = asyncio.get_running_loop()
        killed_at = loop.time()
        # A request caught inside a dying worker fails (and is never resent:
        # that could publish twice). From its death on, every POST must work.
        await asyncio.to_thread(wait_dead, victim)
        revived_after = None
        for number in range(200):
            response = await post(deployed.url + "/news", f"n{number}")
            assert response.code == 202, (number, response.code, response.body)
            assert await receive(listener) == f"n{number}"
            if revived_after is None and healthy(deployed.worker_url(0)):
                revived_after = loop.time() - killed_at
            if revived_after is not None and number >= 20:
                break
            await asyncio.sleep(0.05)
        listener.close()
        assert revived_after is not None, "the killed worker never came back"
        return revived_after

    revived_after = run(scenario())
    assert revived_after < 10.0
    assert deployed.pid(deployed.worker_name(0)) != victim


def wait_dead(pid: int) -> None:
    """Block until ``pid`` is gone or a zombie awaiting its reaper (bounded)."""
    for _ in range(int(WAIT / 0.01)):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                    return
        except FileNotFoundError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} still alive after SIGKILL")


def test_stopping_a_worker_drains_it(deployment: Deploy) -> None:
    """Stopping a worker closes its WebSockets with 1001, finishes a POST in progress, exits 0."""
    deployed = deployment()

    async def scenario() -> None:
        on_first = await connect(deployed.worker_url(0, "ws") + "/room")
        on_second = await connect(deployed.worker_url(1, "ws") + "/room")
        stop: asyncio.Future[str] | None = None

        async def slow_body(write: Callable[[bytes], object]) -> None:
            nonlocal stop
            await write(b"half of it, ")  # type: ignore[misc]
            # The worker is told to stop while this body is still arriving.
            stop = asyncio.ensure_future(
                asyncio.to_thread(deployed.ctl, "stop", deployed.worker_name(0))
            )
            code, _ = await closed(on_first)
            assert code == CLOSE_GOING_AWAY
            await write(b"the rest")  # type: ignore[misc]

        request = HTTPRequest(
            deployed.worker_url(0) + "/room",
            method="POST",
            body_producer=slow_body,
            request_timeout=WAIT,
        )
        response = await post_request(request)
        assert response.code == 202
        assert await receive(on_second) == "half of it, the rest"
        assert stop is not None
        assert "stopped" in await stop
        on_first.close()
        await hang_up(on_second)

    run(scenario())
    log = (deployed.run_dir / "supervisord.log").read_text()
    assert f"stopped: worker-{deployed.base_port} (exit status 0)" in log


async def post_request(request: HTTPRequest):  # type: ignore[no-untyped-def]
    from tornado.httpclient import AsyncHTTPClient

    return await AsyncHTTPClient().fetch(request, raise_error=False)


@pytest.mark.parametrize(("ping_interval", "survives"), [("0.5", True), ("0", False)])
def test_idle_websocket_through_nginx_lives_on_pings(
    deployment: Deploy, ping_interval: str, survives: bool
) -> None:
    """Behind a 2 s nginx read timeout, an idle WebSocket stays up only thanks to server pings."""
    deployed = deployment(
        workers=1,
        TC_READ_TIMEOUT="2s",
        TORNADO_CHANNELS_PING_INTERVAL=ping_interval,
        TORNADO_CHANNELS_PING_TIMEOUT=ping_interval,
    )

    async def scenario() -> None:
        ws = await connect(deployed.ws_url + "/ws/quiet")
        if survives:
            await silent(ws, 4.0)
            await post(deployed.url + "/quiet", b"still here")
            assert await receive(ws) == "still here"
        else:
            # nginx cuts the silent connection once its read timeout passes.
            message = await asyncio.wait_for(ws.read_message(), 6.0)
            assert message is None
        await hang_up(ws)

    run(scenario())


def test_metrics_move_when_messages_flow(deployment: Deploy) -> None:
    """A worker's /_/metrics counts the messages it publishes and delivers."""
    deployed = deployment(workers=1)

    def value(text: str, name: str) -> float:
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(f"{name} not in metrics")

    async def scenario() -> None:
        ws = await connect(deployed.ws_url + "/ws/m")
        before = (await get(deployed.url + "/_/metrics")).body.decode()
        for number in range(3):
            await post(deployed.url + "/m", str(number))
            await receive(ws)
        after = (await get(deployed.url + "/_/metrics")).body.decode()
        published = "tornado_channels_messages_published_total"
        delivered = "tornado_channels_messages_delivered_total"
        assert value(after, published) - value(before, published) == 3
        assert value(after, delivered) - value(before, delivered) == 3
        assert value(after, "tornado_channels_connections") == 1
        await hang_up(ws)

    run(scenario())


def test_up_script_brings_everything_up_with_a_private_redis() -> None:
    """deploy/up.sh with no Redis answering starts a private one, nginx and the workers."""
    deployed = Deployment(workers=2)
    env = {
        **deployed.env,
        "TC_RUN_DIR": str(deployed.run_dir),
        "TORNADO_CHANNELS_REDIS_URL": f"redis://127.0.0.1:{deployed.redis_port}/0",
    }
    for name in ("TC_PRIVATE_REDIS", "TC_REDIS_PORT", "TC_MINFDS"):
        env.pop(name)
    try:
        result = subprocess.run(
            [str(DEPLOY / "up.sh")], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "running a private one" in result.stdout
        assert f"curl {deployed.url}/users/1 -d 'Hi there!'" in result.stdout
        # nginx, redis and both workers, past supervisord's startsecs.
        for _ in range(100):
            status = deployed.ctl("status")
            if status.count("RUNNING") == 4:
                break
            time.sleep(0.1)
        assert status.count("RUNNING") == 4, status
        assert "redis " in status

        async def scenario() -> None:
            ws = await connect(deployed.ws_url + "/ws/users/1")
            assert (await post(deployed.url + "/users/1", b"hello")).code == 202
            assert await receive(ws) == "hello"
            await hang_up(ws)

        run(scenario())
        again = subprocess.run(
            [str(DEPLOY / "up.sh")], env=env, capture_output=True, text=True, timeout=60
        )
        assert "already running" in again.stdout
    finally:
        pid_file = deployed.run_dir / "supervisord.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            deployed.ctl("shutdown")
            for _ in range(300):
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
        deployed.stop()


def test_event_streams_pass_through_nginx_unbuffered(deployment: Deploy) -> None:
    """Server-sent events through nginx arrive at once (not buffered) and resume by id."""
    deployed = deployment(workers=1)

    async def scenario() -> None:
        stream = await EventStream.open(deployed.port, "/sse/1")
        try:
            start = await stream.next(timeout=2)  # where a fresh stream starts
            assert start is not None
            assert start["event"] == "recovery"
            response = await post(deployed.url + "/sse/1", b"through nginx")
            position = json.loads(response.body)["position"]
            assert await stream.next(timeout=2) == {"id": position, "data": "through nginx"}
        finally:
            stream.close()
            await stream.writer.wait_closed()
        missed = json.loads((await post(deployed.url + "/sse/1", b"while away")).body)["position"]
        resumed = await EventStream.open(deployed.port, "/sse/1", {"Last-Event-ID": position})
        try:
            assert await resumed.next(timeout=2) == {"id": missed, "data": "while away"}
        finally:
            resumed.close()
            await resumed.writer.wait_closed()

    run(scenario())


def test_a_retry_after_a_worker_died_mid_publish_delivers_once(deployment: Deploy) -> None:
    """A POST whose worker died mid-publish, retried through nginx with its key: one delivery."""
    deployed = deployment()
    redis = deployed.pid("redis")
    workers = [deployed.pid(deployed.worker_name(n)) for n in range(deployed.workers)]
    key = {"Idempotency-Key": "payment-42"}

    async def scenario() -> None:
        ws = await connect(deployed.ws_url + "/ws/pay/1?positions=1")
        since = (await next_json(ws))["position"]
        os.kill(redis, signal.SIGSTOP)  # The publish reaches Redis, unanswered...
        try:
            attempt = asyncio.ensure_future(post(deployed.url + "/pay/1", "paid", headers=key))
            await asyncio.sleep(0.5)
            for pid in workers:  # ...and its worker dies before answering.
                os.kill(pid, signal.SIGKILL)
            first = await attempt
        finally:
            os.kill(redis, signal.SIGCONT)
        # nginx never resends a POST to another worker: it says none answered.
        assert first.code == 503, first.body
        assert json.loads(first.body)["error"] == "no_worker_available"
        for number in range(deployed.workers):
            deployed.wait_healthy(deployed.worker_url(number))
        retry = await post(deployed.url + "/pay/1", "paid", headers=key)
        assert retry.code == 202, retry.body
        # Whether Redis ran what the dead worker sent or dropped it with its
        # connection, the retry makes it exactly once: a replay, or the publish.
        position = json.loads(retry.body)["position"]
        assert await closed(ws)
        await hang_up(ws)
        resumed = await connect(deployed.ws_url + f"/ws/pay/1?since={since}")
        assert await next_json(resumed) == {"position": position, "data": "paid"}
        assert (await next_json(resumed))["missed"] == 1
        await silent(resumed)
        await hang_up(resumed)

    run(scenario(), timeout=90)


def test_keyed_publishes_ride_pooled_connections_through_a_killed_worker(
    deployment: Deploy,
) -> None:
    """Keyed POSTs go over nginx's pool; a worker killed under it costs none of them."""
    deployed = deployment()
    victim = deployed.pid(deployed.worker_name(0))

    async def scenario() -> None:
        listener = await connect(deployed.worker_url(1, "ws") + "/orders?positions=1")
        await next_json(listener)
        # Fill the pool with connections to both workers.
        for number in range(20):
            headers = {"Idempotency-Key": f"warm-{number}"}
            response = await post(deployed.url + "/orders", f"w{number}", headers=headers)
            assert response.code == 202, response.body
        os.kill(victim, signal.SIGKILL)
        await asyncio.to_thread(wait_dead, victim)
        # The pool held connections to the dead worker: nginx must drop them
        # (or resend what it sent on one: these are keyed) and lose nothing.
        for number in range(40):
            headers = {"Idempotency-Key": f"order-{number}"}
            response = await post(deployed.url + "/orders", f"o{number}", headers=headers)
            assert response.code == 202, (number, response.code, response.body)
        got = [(await next_json(listener))["data"] for _ in range(60)]
        assert got == [f"w{n}" for n in range(20)] + [f"o{n}" for n in range(40)]
        await silent(listener)
        await hang_up(listener)

    run(scenario(), timeout=90)
