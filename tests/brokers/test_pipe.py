"""The publish script's lean connection (brokers/pipe.py), against real Redis servers."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tornado_channels.brokers.pipe import CommandPipe, Pipes, encode

from ..helpers import RedisServer, run


def test_commands_are_encoded_as_resp_arrays_of_bulk_strings() -> None:
    """Bytes, text and integers each become one bulk string."""
    assert encode([b"SET", "k", 12]) == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\n12\r\n"
    assert encode([b"PING"]) == b"*1\r\n$4\r\nPING\r\n"


def pipe_to(server: RedisServer, **options: object) -> CommandPipe:
    async def locate() -> tuple[str, int]:
        return "127.0.0.1", server.port

    return CommandPipe(locate, connect_timeout=2.0, command_timeout=2.0, **options)  # type: ignore[arg-type]


def test_concurrent_calls_pipeline_and_each_gets_its_own_reply(redis_server: RedisServer) -> None:
    """500 calls at once on one connection: each caller gets the reply to its own command."""

    async def scenario() -> None:
        pipe = pipe_to(redis_server)
        replies = await asyncio.gather(*(pipe.call([b"INCRBY", b"n", i]) for i in range(1, 501)))
        totals = [reply[0] for reply in replies]
        assert totals == [sum(range(1, i + 1)) for i in range(1, 501)]
        assert await pipe.call([b"SET", b"a", b"1"], [b"GET", b"a"]) == [b"OK", b"1"]
        pipe.close()

    run(scenario())


def test_an_error_reply_raises_redis_pys_exception_and_the_pipe_goes_on(
    redis_server: RedisServer,
) -> None:
    """NOSCRIPT is a NoScriptError, any other error a ResponseError; the next call is answered."""

    async def scenario() -> None:
        pipe = pipe_to(redis_server)
        with pytest.raises(NoScriptError):
            await pipe.call([b"EVALSHA", b"0" * 40, 0])
        with pytest.raises(ResponseError, match="unknown command"):
            await pipe.call([b"NOSUCHCOMMAND"])
        assert await pipe.call([b"PING"]) == [b"PONG"]
        pipe.close()

    run(scenario())


def test_a_password_and_a_database_are_used_as_the_client_would() -> None:
    """With requirepass and db 3, the pipe authenticates and writes where redis-py reads."""
    server = RedisServer(extra=["--requirepass", "sesame"]).start()

    async def scenario() -> None:
        client = Redis.from_url(f"redis://:sesame@127.0.0.1:{server.port}/3")
        pipe = Pipes().of(client)
        assert pipe is not None
        assert await pipe.call([b"SET", b"where", b"db3"]) == [b"OK"]
        assert await client.get("where") == b"db3"
        pipe.close()
        await client.aclose()

    try:
        run(scenario())
    finally:
        server.stop()


def test_a_killed_server_fails_the_waiting_call_and_a_restarted_one_is_used_again(
    redis_server: RedisServer,
) -> None:
    """Kill -9 while a call waits: ConnectionError, never a resend; after a restart, answers."""

    async def scenario() -> None:
        pipe = pipe_to(redis_server)
        assert await pipe.call([b"PING"]) == [b"PONG"]
        waiting = asyncio.ensure_future(pipe.call([b"BLPOP", b"never", 0]))
        await asyncio.sleep(0.2)  # The BLPOP is on the server, blocking.
        redis_server.kill()
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(waiting, 10)
        with pytest.raises(RedisConnectionError):
            await pipe.call([b"PING"])  # Nobody listens: refused, not hung.
        redis_server.start()
        assert await pipe.call([b"PING"]) == [b"PONG"]
        pipe.close()

    run(scenario())


def test_a_frozen_server_times_the_call_out_and_the_pipe_reconnects(
    redis_server: RedisServer,
) -> None:
    """SIGSTOP past the command timeout: TimeoutError; once thawed, a new connection answers."""

    async def scenario() -> None:
        async def locate() -> tuple[str, int]:
            return "127.0.0.1", redis_server.port

        pipe = CommandPipe(locate, connect_timeout=2.0, command_timeout=0.5)
        assert await pipe.call([b"PING"]) == [b"PONG"]
        assert redis_server.process is not None
        pid = redis_server.process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            with pytest.raises(RedisTimeoutError):
                await asyncio.wait_for(pipe.call([b"PING"]), 10)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert await pipe.call([b"PING"]) == [b"PONG"]
        pipe.close()

    run(scenario())


def test_tls_and_unix_socket_clients_keep_redis_py() -> None:
    """No pipe where the connection is not plain TCP: redis-py carries those commands."""
    pipes = Pipes()
    assert pipes.of(Redis(host="127.0.0.1", port=6390, ssl=True)) is None
    assert pipes.of(Redis(unix_socket_path="/tmp/no-such.sock")) is None
    assert pipes.of(Redis(host="127.0.0.1", port=6390)) is not None
