"""Publisher and AsyncPublisher against real server processes: answers, refusals, failures."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tornado_channels.client import (
    AsyncPublisher,
    BrokerUnavailable,
    ChannelError,
    ChannelsError,
    ConnectionFailed,
    Forbidden,
    MessageTooLarge,
    Publisher,
    PublishOutcomeUnknown,
    Retry,
    Unauthorized,
)
from tornado_channels.client.retry import NO_RETRY

from ..helpers import WAIT, RedisServer, ServerProcess, connect, hang_up, next_json, run
from ..helpers.support import bound_socket

pytestmark = pytest.mark.processes


@dataclass(frozen=True)
class CountedRetry(Retry):
    """A retry policy that records each retry it is asked to wait for."""

    retries: list[float] = field(default_factory=list)

    def delay(self, bound: float, error: ChannelsError) -> float:
        self.retries.append(bound)
        return super().delay(bound, error)


Start = Callable[..., ServerProcess]


class AsyncAsSync:
    """An AsyncPublisher driven from a test's plain code, on one loop of its own."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.runner = asyncio.Runner()
        self.publisher = self.runner.run(self._make(args, kwargs))

    @staticmethod
    async def _make(args: Any, kwargs: Any) -> AsyncPublisher:
        return AsyncPublisher(*args, **kwargs)

    def publish(self, *args: Any, **kwargs: Any) -> str:
        return self.runner.run(self.publisher.publish(*args, **kwargs))

    def publish_many(self, *args: Any, **kwargs: Any) -> list[str]:
        return self.runner.run(self.publisher.publish_many(*args, **kwargs))

    def close(self) -> None:
        self.runner.run(self.publisher.aclose())
        self.runner.close()


@pytest.fixture(params=["sync", "async"])
def make(request: pytest.FixtureRequest) -> Iterator[Callable[..., Any]]:
    """Make a Publisher, or an AsyncPublisher behind the same calls; each closed afterwards."""
    made: list[Any] = []

    def factory(*args: Any, **kwargs: Any) -> Any:
        publisher = (
            Publisher(*args, **kwargs) if request.param == "sync" else AsyncAsSync(*args, **kwargs)
        )
        made.append(publisher)
        return publisher

    yield factory
    for publisher in made:
        publisher.close()


def test_publish_and_publish_many_return_positions_in_order(
    servers: Start, make: Callable[..., Any]
) -> None:
    """Each publish returns its position; a batch returns consecutive ones; a subscriber agrees."""
    server = servers()
    publisher = make(server.url)

    async def subscriber() -> list[dict[str, Any]]:
        ws = await connect(server.ws_url + "/users/1?positions=1")
        await next_json(ws)
        ready.set()
        got = [await next_json(ws) for _ in range(4)]
        await hang_up(ws)
        return got

    ready = threading.Event()
    result: list[list[dict[str, Any]]] = []
    thread = threading.Thread(target=lambda: result.append(run(subscriber())))
    thread.start()
    assert ready.wait(10)
    first = publisher.publish("users/1", "one")
    rest = publisher.publish_many([("users/1", "two"), ("users/", b"\xff"), ("users/1", {"n": 4})])
    thread.join(10)
    epoch, seq = first.split(":")
    assert rest == [f"{epoch}:{int(seq) + i}" for i in (1, 2, 3)]
    assert [m["position"] for m in result[0]] == [first, *rest]
    assert [m.get("data", m.get("binary")) for m in result[0]] == ["one", "two", "/w==", '{"n":4}']


def test_refusals_raise_their_own_errors(servers: Start, make: Callable[..., Any]) -> None:
    """A 413, an invalid channel, a missing and a wrong key each raise their type, at once."""
    server = servers("--max-message-size", "100", "--publish-key", "s3cret")
    good = make(server.url, key="s3cret")
    with pytest.raises(MessageTooLarge) as too_large:
        good.publish("users/1", "x" * 101)
    assert too_large.value.status == 413
    with pytest.raises(MessageTooLarge):
        good.publish_many([("users/1", "x" * 101)])
    for bad in ("a/../b", "a/./b", "a//b"):
        with pytest.raises(ChannelError):
            good.publish(bad, "x")
    with pytest.raises(Unauthorized):
        make(server.url).publish("users/1", "x")
    retry = CountedRetry()
    with pytest.raises(Forbidden):
        make(server.url, key="wrong", retry=retry).publish("users/1", "x")
    assert retry.retries == []  # Refused, never retried.
    assert good.publish("users/1", "fits").count(":") == 1


def test_a_retry_with_the_same_key_is_answered_not_published_again(
    servers: Start, make: Callable[..., Any]
) -> None:
    """The same Idempotency-Key twice returns the first position (the server replays it)."""
    server = servers()
    publisher = make(server.url)
    first = publisher.publish("orders/7", "paid", idempotency_key="order-7-paid")
    assert publisher.publish("orders/7", "paid", idempotency_key="order-7-paid") == first
    batch = publisher.publish_many([("a", "1"), ("b", "2")], idempotency_key="batch-1")
    assert publisher.publish_many([("a", "1"), ("b", "2")], idempotency_key="batch-1") == batch


def test_a_server_killed_mid_publish_is_retried_on_its_replacement(
    servers: Start, make: Callable[..., Any]
) -> None:
    """Publishing through a kill -9 and a restart: every publish returns, none fails."""
    redis = RedisServer().start()
    try:
        server = servers("--redis-url", redis.url)
        publisher = make(server.url, retry=Retry(attempts=40, backoff=0.05, cap=0.25), timeout=2)
        done: list[str] = []
        errors: list[BaseException] = []

        def keep_publishing() -> None:
            try:
                for number in range(150):
                    done.append(publisher.publish("jobs/1", f"m{number}"))
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                errors.append(exc)

        thread = threading.Thread(target=keep_publishing)
        thread.start()
        deadline = time.monotonic() + 10
        while len(done) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.terminate(9)
        servers("--redis-url", redis.url, port=server.port)
        thread.join(30)
        assert not errors
        assert len(done) == 150
        # Each publish was published once: its retries were answered, not repeated.
        assert len(set(done)) == 150
        seqs = [int(position.split(":")[1]) for position in done]
        assert seqs == sorted(seqs)
        assert seqs[-1] - seqs[0] == 149
    finally:
        redis.stop()


def test_503_while_redis_is_down_is_retried_until_it_is_back(
    servers: Start, make: Callable[..., Any]
) -> None:
    """During a Redis outage a publish retries its 503s; it raises BrokerUnavailable if it lasts."""
    redis = RedisServer().start()
    try:
        server = servers("--redis-url", redis.url)
        patient = make(server.url, retry=Retry(attempts=30, backoff=0.1, cap=0.5))
        impatient = make(server.url, retry=Retry(attempts=2, backoff=0.05, cap=0.1))
        assert patient.publish("users/1", "before")
        redis.kill()
        with pytest.raises(BrokerUnavailable) as refused:
            impatient.publish("users/1", "lost")
        assert refused.value.retry_after == 1.0
        threading.Timer(1.5, redis.start).start()
        assert patient.publish("users/1", "after").count(":") == 1
    finally:
        redis.stop()


def test_without_a_key_a_broken_connection_is_not_retried(make: Callable[..., Any]) -> None:
    """A server that drops the request after reading it: raised at once, never sent twice."""
    with bound_socket() as listener:
        listener.listen()
        port = listener.getsockname()[1]
        accepted: list[int] = []

        def drop() -> None:
            listener.settimeout(5)
            for _ in range(2):
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                accepted.append(1)
                conn.recv(65536)
                conn.close()

        threading.Thread(target=drop, daemon=True).start()
        publisher = make(f"http://127.0.0.1:{port}", auto_idempotency=False, timeout=2)
        with pytest.raises(ConnectionFailed) as failed:
            publisher.publish("users/1", "x")
        assert failed.value.sent
        time.sleep(0.3)
        assert accepted == [1]


def test_a_timeout_bounds_each_attempt(make: Callable[..., Any]) -> None:
    """A server that never answers: the publish fails after its timeout, not later."""
    with bound_socket() as listener:
        listener.listen()
        publisher = make(
            f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=0.5, retry=NO_RETRY
        )
        failed: list[BaseException] = []

        def attempt() -> None:
            try:
                publisher.publish("users/1", "x")
            except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
                failed.append(exc)

        # Without the timeout the publish would wait for ever: it must end on its own.
        thread = threading.Thread(target=attempt, daemon=True)
        thread.start()
        thread.join(WAIT)
        assert not thread.is_alive(), "the publish outlived its timeout"
        assert len(failed) == 1
        assert isinstance(failed[0], ConnectionFailed)


def test_a_504_is_retried_only_with_a_key() -> None:
    """A 504 publish_outcome_unknown is raised without a key, retried (then answered) with one."""

    def answer(status: str, body: dict[str, Any]) -> bytes:
        data = json.dumps(body).encode()
        head = f"HTTP/1.1 {status}\r\nContent-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        return head.encode() + data

    outcome_unknown = answer("504 Gateway Timeout", {"error": "publish_outcome_unknown"})
    answers = [outcome_unknown, outcome_unknown, answer("202 Accepted", {"position": "a:1"})]
    with bound_socket() as listener:
        listener.listen()
        seen: list[bytes] = []

        def serve() -> None:
            listener.settimeout(5)
            for reply in answers:
                conn, _ = listener.accept()
                with conn:
                    seen.append(conn.recv(65536))
                    conn.sendall(reply)

        threading.Thread(target=serve, daemon=True).start()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with (
            Publisher(url, auto_idempotency=False, pool_size=1) as publisher,
            pytest.raises(PublishOutcomeUnknown),
        ):
            publisher.publish("users/1", "x")
        with Publisher(url, retry=Retry(attempts=3, backoff=0.01), pool_size=1) as publisher:
            assert publisher.publish("users/1", "x", idempotency_key="k1") == "a:1"
        assert [b"Idempotency-Key: k1" in request for request in seen] == [False, True, True]


def test_the_async_publisher_never_blocks_its_loop() -> None:
    """While an AsyncPublisher waits for a silent server, its event loop keeps running."""
    with bound_socket() as listener:
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"

        async def scenario() -> int:
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            ticker = asyncio.ensure_future(tick())
            async with AsyncPublisher(url, timeout=1.0, retry=NO_RETRY) as publisher:
                with pytest.raises(ConnectionFailed):
                    await publisher.publish("users/1", "x")
            ticker.cancel()
            return ticks

        assert run(scenario()) >= 40


def test_the_sync_publisher_needs_no_event_loop(servers: Start) -> None:
    """Publisher works from plain threads, with no event loop anywhere in them."""
    server = servers()
    with Publisher(server.url) as publisher:
        results: list[str] = []

        def work() -> None:
            with pytest.raises(RuntimeError):
                asyncio.get_running_loop()
            results.extend(publisher.publish("t/1", f"m{i}") for i in range(20))

        threads = [threading.Thread(target=work) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(set(results)) == 80
        assert json.loads(json.dumps(results))


def test_a_keep_alive_connection_the_server_closed_is_not_reused(
    servers: Start, make: Callable[..., Any]
) -> None:
    """After the server drops an idle connection, the next publish opens a new one and succeeds."""
    server = servers("--idle-timeout", "0.3")
    publisher = make(server.url, auto_idempotency=False, retry=NO_RETRY)
    first = publisher.publish("users/1", "one")
    time.sleep(1.0)  # past the idle timeout: the server has closed the pooled connection
    assert publisher.publish("users/1", "two") != first
