"""subscribe() against real server processes: resume across restarts, failed recovery, tokens."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from tornado_channels.client import (
    AsyncPublisher,
    ChannelError,
    ChannelsError,
    Message,
    Recovery,
    RecoveryFailed,
    RedisPublisher,
    Unauthorized,
    subscribe,
)

from ..helpers import WAIT, RedisServer, ServerProcess, get, run
from ..helpers.support import bound_socket

pytestmark = pytest.mark.processes

Start = Callable[..., ServerProcess]
SECRET = "a-secret-for-the-client-tests-32-bytes+"


async def take(stream: Any, count: int, timeout: float = WAIT) -> list[Any]:
    """The next ``count`` items of ``stream``, within ``timeout`` seconds."""

    async def gather() -> list[Any]:
        return [await anext(stream) for _ in range(count)]

    return await asyncio.wait_for(gather(), timeout)


async def nothing_more(stream: Any, wait: float = 0.5) -> None:
    """Nothing else arrives on ``stream`` within ``wait`` seconds."""
    task = asyncio.ensure_future(anext(stream))
    done, _ = await asyncio.wait([task], timeout=wait)
    task.cancel()
    assert not done, f"unexpected: {task.result()}"


async def subscribers(server: ServerProcess) -> int:
    """How many subscriptions ``server`` holds now."""
    response = await get(server.url + "/_/stats")
    return int(json.loads(response.body)["subscriptions"])


async def until_subscribers(server: ServerProcess, count: int) -> None:
    """Wait (bounded) until ``server`` holds ``count`` subscriptions."""
    deadline = time.monotonic() + WAIT
    while (found := await subscribers(server)) != count:
        assert time.monotonic() < deadline, f"{found} subscriptions, not {count}"
        await asyncio.sleep(0.05)


def test_it_resumes_across_a_server_restart_with_200_messages_published_meanwhile(
    servers: Start,
) -> None:
    """200 messages published while its server was down arrive once each, in order, then live."""
    redis = RedisServer().start()
    args = ("--redis-url", redis.url, "--history-size", "500")
    server = servers(*args)

    async def scenario() -> None:
        async with (
            # The servers' history size: the publisher trims the streams it writes to.
            RedisPublisher(redis.url, history_size=500) as publisher,
            subscribe(server.ws_url + "/users/1") as messages,
        ):
            first = asyncio.ensure_future(anext(messages))
            await until_subscribers(server, 1)
            before = await publisher.publish("users/1", "before")
            assert await asyncio.wait_for(first, WAIT) == Message(before, "before")
            server.terminate()
            sent = [await publisher.publish("users/1", f"m{n}") for n in range(200)]
            servers(*args, port=server.port)
            got = await take(messages, 200, timeout=30)
            assert [m.data for m in got] == [f"m{n}" for n in range(200)]
            assert [m.position for m in got] == sent
            live = await publisher.publish("users/1", "live")
            assert await take(messages, 1) == [Message(live, "live")]
            await nothing_more(messages)
            assert messages.connections >= 2

    try:
        run(scenario())
    finally:
        redis.stop()


def test_a_lost_history_raises_recovery_failed_and_the_stream_goes_on(servers: Start) -> None:
    """A restart that loses the history raises RecoveryFailed; iterating on gets live messages."""
    server = servers()

    async def scenario() -> None:
        async with subscribe(server.ws_url + "/news") as messages:
            first = asyncio.ensure_future(anext(messages))
            await until_subscribers(server, 1)
            async with AsyncPublisher(server.url) as publisher:
                await publisher.publish("news", "one")
            assert (await asyncio.wait_for(first, WAIT)).data == "one"
            server.terminate()
            restarted = servers(port=server.port)
            with pytest.raises(RecoveryFailed) as failed:
                await take(messages, 1, timeout=20)
            assert failed.value.position is not None
            async with AsyncPublisher(restarted.url) as publisher:
                live = await publisher.publish("news", "two")
            assert await take(messages, 1) == [Message(live, "two")]

    run(scenario())


def test_with_outcomes_every_recovery_outcome_is_yielded(servers: Start) -> None:
    """outcomes=True yields each connection's outcome among the messages instead of raising."""
    server = servers()

    async def scenario() -> None:
        async with subscribe(server.ws_url + "/news", outcomes=True) as messages:
            [opening] = await take(messages, 1)
            assert isinstance(opening, Recovery)
            assert opening.recovered
            server.terminate()
            servers(port=server.port)
            [outcome] = await take(messages, 1, timeout=20)
            assert outcome == Recovery(False, 0, outcome.position, outcome.reason)
            assert outcome.reason

    run(scenario())


def test_a_token_provider_renews_expiring_tokens_without_losing_a_message(
    servers: Start,
) -> None:
    """Tokens that last 2 s are renewed by the provider on each 4001; every message comes once."""
    key = "the-backend-key"  # Where tokens are on, a POST needs the key (or a token).
    server = servers(
        "--token-leeway",
        "0",
        env={"TORNADO_CHANNELS_TOKEN_SECRET": SECRET, "TORNADO_CHANNELS_PUBLISH_KEY": key},
    )
    issued: list[float] = []

    def token() -> str:
        issued.append(time.time())
        claims = {"sub": "u1", "exp": int(time.time()) + 2, "subscribe": ["users/1"]}
        return jwt.encode(claims, SECRET, algorithm="HS256")

    async def scenario() -> None:
        with pytest.raises(Unauthorized):
            await take(subscribe(server.ws_url + "/users/1"), 1)
        async with (
            subscribe(server.ws_url + "/users/1", token=token) as messages,
            AsyncPublisher(server.url, key=key) as publisher,
        ):
            first = asyncio.ensure_future(anext(messages))
            await until_subscribers(server, 1)
            sent = [await publisher.publish("users/1", "m0")]
            got = [await asyncio.wait_for(first, WAIT)]
            started = time.monotonic()
            while time.monotonic() - started < 6:
                sent.append(await publisher.publish("users/1", f"m{len(sent)}"))
                await asyncio.sleep(0.1)
            got += await take(messages, len(sent) - 1, timeout=20)
            assert [m.position for m in got] == sent
            await nothing_more(messages)
        assert len(issued) >= 3

    run(scenario())


def test_closing_lets_go_of_the_subscription(servers: Start) -> None:
    """aclose() ends the iteration and the server drops the subscription."""
    server = servers()

    async def scenario() -> None:
        messages = subscribe(server.url + "/users/1")
        pending = asyncio.ensure_future(anext(messages))
        await until_subscribers(server, 1)
        await messages.aclose()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(pending, WAIT)
        await until_subscribers(server, 0)
        with pytest.raises(StopAsyncIteration):
            await anext(messages)

    run(scenario())


def test_a_handshake_refused_for_good_raises_its_error(servers: Start) -> None:
    """An invalid channel raises ChannelError at once, instead of reconnecting forever."""
    server = servers()

    async def scenario() -> None:
        async with subscribe(server.ws_url + "/a/%2E%2E/b") as messages:
            with pytest.raises(ChannelError) as refused:
                await take(messages, 1)
            assert refused.value.status == 400
            assert messages.connections == 0

    run(scenario())


def test_a_server_that_is_not_tornado_channels_is_an_error_not_a_hang() -> None:
    """Frames that are neither envelopes nor outcomes raise ChannelsError to the consumer."""
    from websockets.asyncio.server import ServerConnection, serve

    async def echo_server(connection: ServerConnection) -> None:
        await connection.send("hello, I am something else")
        await connection.wait_closed()

    async def scenario() -> None:
        listener = bound_socket()
        async with serve(echo_server, sock=listener) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            async with subscribe(f"ws://127.0.0.1:{port}/users/1") as messages:
                with pytest.raises(ChannelsError, match="unreadable frame"):
                    await take(messages, 1)

    run(scenario())
