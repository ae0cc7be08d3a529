"""The deployment shape: workers under supervisord, nginx in front, one Redis."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection

from tornado_channels.core.frames import CLOSE_GOING_AWAY

from ..helpers import (
    DEPLOY,
    WAIT,
    Deployment,
    EventStream,
    RawResponse,
    closed,
    connect,
    get,
    hang_up,
    healthy,
    needs_nginx,
    next_json,
    post,
    raw_exchange,
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


#: A value no log may ever show: every spelling of the token parameter carries it.
SECRET = "SECRET-3c9a"
TOKEN_QUERIES = [
    f"?token={SECRET}",
    f"?xtoken=1&%74oken={SECRET}",
    f"?a=1&to%6Ben={SECRET}",
]


@pytest.fixture(scope="module")
def front() -> Iterator[Deployment]:
    """One worker behind nginx, shared by the tests of nginx's edge.

    Small bodies (100 bytes), the operational routes limited to a network we
    are not on (as docs/deploying.md advises for production), and the worker
    logging every request, so a token in any request would reach its log.
    """
    deployed = Deployment(
        workers=1,
        TORNADO_CHANNELS_MAX_MESSAGE_SIZE="100",
        TC_OPS_ALLOW="10.0.0.0/8",
        TORNADO_CHANNELS_LOG_LEVEL="debug",
    )
    try:
        yield deployed.start()
    finally:
        deployed.stop()


def test_nginx_keeps_names_requests_and_errors_intact(front: Deployment) -> None:
    """Through nginx: encoded names survive /ws/, Host is forwarded, and refusals are JSON."""
    deployed = front

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


#: Requests nginx refuses itself, and how: (raw request, status, error code).
NGINX_REFUSALS = [
    (b"GET\x01 / HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
    (b"HELLO\r\n\r\n", 400, "bad_request"),
    (b"GET / HTTP/1.1\r\n\r\n", 400, "bad_request"),
    (b"GET /a?q=" + b"x" * 10240 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "uri_too_long"),
    (
        b"GET /a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"x" * 10240 + b"\r\n\r\n",
        431,
        "request_header_too_large",
    ),
    (b"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", 405, "method_not_allowed"),
    (b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "not_implemented"),
    (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_version_not_supported"),
    (
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n" + b"x" * 101,
        413,
        "message_too_large",
    ),
]


@pytest.mark.parametrize(("request_bytes", "status", "error"), NGINX_REFUSALS)
def test_nginx_refuses_in_json_like_the_workers(
    front: Deployment, request_bytes: bytes, status: int, error: str
) -> None:
    """A request nginx cannot take itself gets a JSON refusal with the workers' error code."""
    responses, _ = raw_exchange(front.port, request_bytes, timeout=WAIT)
    assert responses, request_bytes[:40]
    answer = responses[0]
    assert (answer.status, answer.headers.get("content-type")) == (status, "application/json")
    assert answer.json()["error"] == error
    assert answer.json()["message"]


def test_a_workers_own_refusals_pass_through_nginx_untouched(front: Deployment) -> None:
    """A worker's 400, 405 and 413 reach the client as the worker wrote them, not nginx's."""

    async def scenario() -> None:
        for method, path, body in [
            ("GET", "/a%2Fb", None),
            ("GET", "/_/publish", None),
            ("POST", "/_/publish", b"[" * 5000),
        ]:
            direct = await get(front.worker_url(0) + path, method=method, body=body)
            through = await get(front.url + path, method=method, body=body)
            assert through.code == direct.code >= 400, (path, through.code, direct.code)
            assert json.loads(through.body) == json.loads(direct.body)

    run(scenario())


#: Every spelling of a path below /ws/ that would land in the workers' /_/.
RESERVED_UNDER_WS = [
    "/ws/_/stats",
    "/ws/%5F/stats",
    "/ws/%5f/stats",
    "/ws//_/stats",
    "/ws/./_/stats",
    "/ws/%2E/_/stats",
    "/ws/x/../_/stats",
    "/ws/_%2Fstats",
    "/ws/_",
    "/ws/_?x=1",
    "/%77s/_/stats",
    "/ws/_/metrics",
    "/ws/_/publish",
]


def test_ws_never_reaches_the_operational_routes(front: Deployment) -> None:
    """/ws/_/... in any spelling is a JSON 400 at nginx, past a limit on /_/ or not."""
    # The route exists, and the limit on /_/ holds where it is asked for directly.
    assert raw_get(front.base_port, "/_/stats").status == 200
    for path in ["/_/stats", "/%5F/stats", "/_/metrics", "/ws/../_/stats"]:
        denied = raw_get(front.port, path)
        assert (denied.status, denied.json()["error"]) == (403, "forbidden"), path
    for path in RESERVED_UNDER_WS:
        answer = raw_get(front.port, path)
        assert answer.status == 400, (path, answer)
        assert answer.json()["error"] == "invalid_channel", (path, answer)
    # What /ws/ is for, and what must stay open past the limit, still work.
    for path in ["/ws/_x/1", "/_/health", "/_/static/style.css", "/_/openapi.json"]:
        assert raw_get(front.port, path).status == 200, path
    encoded = raw_get(front.port, "/%77s/users/1")
    assert (encoded.status, encoded.json()["error"]) == (400, "bad_request")


def raw_get(port: int, path: str) -> RawResponse:
    """GET ``path`` exactly as written (no client normalizes it), on a fresh connection."""
    request = f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    responses, _ = raw_exchange(port, request, timeout=WAIT)
    assert responses, path
    return responses[0]


def test_no_log_of_the_deployment_holds_a_token(front: Deployment) -> None:
    """Tokens however their name is spelled reach neither nginx's logs nor the worker's."""

    async def scenario() -> None:
        for query in TOKEN_QUERIES:
            for url in (front.url, front.worker_url(0)):
                assert (await post(f"{url}/users/1{query}", b"m")).code == 202
                assert (await get(f"{url}/ws/a%2Fb{query}")).code == 400
                assert (await post(f"{url}/a{query}", b"x" * 101)).code == 413
            long = raw_get(front.port, f"/a{query}&q={'x' * 10240}")
            assert long.status == 414
            huge = raw_exchange(
                front.port,
                f"GET /a{query} HTTP/1.1\r\nHost: x\r\nX-Big: {'x' * 10240}\r\n\r\n".encode(),
                timeout=WAIT,
            )[0]
            assert huge[0].status == 431

        # The last line the worker logs; its log arrives through supervisord.
        assert (await get(front.worker_url(0) + "/logged/last")).code == 200

    run(scenario())
    marker = "GET /logged/last"
    deadline = time.monotonic() + WAIT
    while marker not in front.logs() and time.monotonic() < deadline:
        time.sleep(0.05)
    logs = front.logs()
    assert marker in logs, logs
    assert "[redacted]" in logs
    nginx_lines = (front.run_dir / "nginx-access.log").read_text()
    assert " 414 " in nginx_lines
    assert '"POST /a HTTP/1.1" 413' in nginx_lines
    assert '"GET /a HTTP/1.1" 431' in nginx_lines
    everything = "\n".join(
        path.read_text(errors="replace") for path in sorted(front.run_dir.glob("*.log"))
    )
    assert SECRET not in everything


def test_ops_allow_renders_allow_lines_nginx_accepts(tmp_path: Path) -> None:
    """TC_OPS_ALLOW's networks become allow lines then deny all, valid nginx; a bad one stops."""
    env = {
        "TC_RUN_DIR": str(tmp_path),
        "TC_BASE_PORT": "6001",
        "PATH": os.environ["PATH"],
        "TC_OPS_ALLOW": "127.0.0.1, 10.0.0.0/8 ::1",
    }
    render = [sys.executable, str(DEPLOY / "render_nginx.py")]
    result = subprocess.run(render, env=env, capture_output=True, text=True, timeout=WAIT)
    assert result.returncode == 0, result.stderr
    ops = result.stdout.split("location /_/ {")[1].split("}")[0].split()
    assert ops[:8] == ["allow", "127.0.0.1/32;", "allow", "10.0.0.0/8;", "allow", "::1/128;",
                       "deny", "all;"]  # fmt: skip
    config = tmp_path / "nginx.conf"
    config.write_text(result.stdout)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    checked = subprocess.run(
        [nginx, "-t", "-q", "-c", str(config)], capture_output=True, text=True, timeout=WAIT
    )
    assert checked.returncode == 0, checked.stderr
    bad = subprocess.run(
        render, env={**env, "TC_OPS_ALLOW": "10.0.0.0/8; allow all"}, capture_output=True,
        text=True, timeout=WAIT,
    )  # fmt: skip
    assert bad.returncode != 0
    assert "TC_OPS_ALLOW" in bad.stderr


def test_restarting_one_worker_leaves_the_other_delivering(deployment: Deploy) -> None:
    """While supervisorctl restarts one worker, every POST through nginx's pool gets through."""
    deployed = deployment()

    async def scenario() -> None:
        on_second = await connect(deployed.worker_url(1, "ws") + "/room")
        # Pooled connections to both workers, idle when the restart begins.
        for number in range(20):
            assert (await post(deployed.url + "/warm", f"w{number}")).code == 202
        restart = asyncio.ensure_future(
            asyncio.to_thread(deployed.ctl, "restart", deployed.worker_name(0))
        )
        delivered = 0
        while not restart.done():
            # Through nginx: the stopping worker must never close a pooled
            # connection under a POST (nginx would not resend it).
            response = await post(deployed.url + "/room", f"m{delivered}")
            assert response.code == 202, (delivered, response.code, response.body)
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
        # nginx's pool holds connections to both workers when one is killed.
        for number in range(20):
            assert (await post(deployed.url + "/warm", f"w{number}")).code == 202
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
    """up.sh with no Redis answering starts a private one, nginx, and workers listing no channel."""
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
            # Channel names can be private: no worker's home page lists them.
            private = await connect(deployed.ws_url + "/ws/private-room/7")
            for number in range(deployed.workers):
                home = (await get(deployed.worker_url(number) + "/")).body.decode()
                assert 'id="go"' in home
                assert "private-room" not in home
                assert "Active channels" not in home
            await hang_up(private)
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
