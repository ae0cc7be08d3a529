"""A lean, pipelined connection to one Redis server, for the publish script.

A POST runs one script call on Redis, and through redis-py's asyncio client
that call cost about 135 µs of the worker's CPU (its pool, retry and timeout
layers and a StreamReader), a third of a whole POST (docs/performance.md).
A :class:`CommandPipe` is an asyncio protocol on one socket: commands are
encoded as RESP and written at once, replies are parsed by hiredis (C) and
handed to their callers in order, so concurrent calls pipeline by
themselves.  About 50 µs per command.

What it keeps of redis-py's behaviour, so the broker cannot tell them apart:

- errors are redis-py's exceptions: a reply error is a ``ResponseError``
  (``NoScriptError`` for ``NOSCRIPT``, ``ReadOnlyError`` for ``READONLY``),
  a lost or refused connection a ``ConnectionError``, a reply that does not
  come in time a ``TimeoutError``;
- it never resends a command (a resent publish can deliver twice);
- it connects where the client would: the same host and port, or the
  master a Sentinel names now, with the same credentials and database.

:class:`Pipes` makes one per client it can serve: plain TCP connections
only (TLS and Unix sockets stay with redis-py).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.asyncio.sentinel import SentinelConnectionPool
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    NoScriptError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

#: One command: its name and arguments.
Command = Sequence[bytes | str | int]
#: Where the server is now: (host, port).
Locate = Callable[[], Awaitable[tuple[str, int]]]


def encode(command: Command) -> bytes:
    """``command`` as a RESP array of bulk strings."""
    parts = [b"*%d\r\n" % len(command)]
    for argument in command:
        if isinstance(argument, bytes):
            data = argument
        elif isinstance(argument, str):
            data = argument.encode()
        else:
            data = b"%d" % argument
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def reply_error(error: hiredis.ReplyError) -> ResponseError:
    """The redis-py exception for an error reply."""
    message = str(error)
    if message.startswith("NOSCRIPT"):
        return NoScriptError(message)
    if message.startswith("READONLY"):
        return ReadOnlyError(message)
    return ResponseError(message)


class CommandPipe(asyncio.Protocol):
    """One connection to one server, commands pipelined, replies in order."""

    def __init__(
        self,
        locate: Locate,
        *,
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        connect_timeout: float | None = None,
        command_timeout: float | None = None,
    ) -> None:
        self._locate = locate
        self._username = username
        self._password = password
        self._db = db
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        # The connection, once it may carry commands (after the greeting is
        # written), and the connection itself from the moment it is made.
        self._transport: asyncio.Transport | None = None
        self._wire: asyncio.Transport | None = None
        self._reader = hiredis.Reader()
        self._waiters: deque[asyncio.Future[Any]] = deque()
        self._connecting: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    async def call(self, *commands: Command) -> list[Any]:
        """Send ``commands`` together; their replies, in order (an error reply raises)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            await self._connect()
            transport = self._transport
            assert transport is not None
        futures = self._send(transport, commands)
        return [await future for future in futures]

    def close(self) -> None:
        """Close the connection; calls waiting for replies fail with ConnectionError."""
        self._closed = True
        if self._wire is not None:
            self._wire.close()

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """A new connection: a fresh reply parser (commands wait for the greeting)."""
        # A stream connection's transport is a Transport (the signature is the base's).
        self._wire = cast(asyncio.Transport, transport)
        self._reader = hiredis.Reader()

    def data_received(self, data: bytes) -> None:
        """Hand each complete reply to the oldest waiting call."""
        reader = self._reader
        reader.feed(data)
        waiters = self._waiters
        while (reply := reader.gets()) is not False:
            if not waiters:
                self._fail(RedisConnectionError("Redis sent a reply nobody asked for"))
                return
            waiter = waiters.popleft()
            if waiter.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                error = reply_error(reply)
                waiter.set_exception(error)
                if isinstance(error, ReadOnlyError):
                    # A master turned replica (a failover): the next call
                    # connects to whichever server is the master now.
                    self._fail(RedisConnectionError("the master is now a replica"))
                    return
            else:
                waiter.set_result(reply)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        """Gone: every call still waiting fails."""
        self._transport = self._wire = None
        self._disarm()
        self._fail_waiters(RedisConnectionError(f"Redis closed the connection: {exc or 'EOF'}"))

    # Inside

    def _send(self, transport: asyncio.Transport, commands: Sequence[Command]) -> list[Any]:
        loop = asyncio.get_running_loop()
        futures = []
        for _ in commands:
            future: asyncio.Future[Any] = loop.create_future()
            self._waiters.append(future)
            futures.append(future)
        transport.write(b"".join(encode(command) for command in commands))
        self._arm()
        return futures

    async def _connect(self) -> None:
        if self._closed:
            raise RedisConnectionError("the pipe is closed")
        if self._connecting is None or self._connecting.done():
            self._connecting = asyncio.ensure_future(self._open())
        connecting = self._connecting
        # Shielded: one caller's cancellation does not abort everyone's connect.
        await asyncio.shield(connecting)

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            host, port = await self._locate()
            await asyncio.wait_for(
                loop.create_connection(lambda: self, host, port), self._connect_timeout
            )
        except (OSError, asyncio.TimeoutError) as exc:
            raise RedisConnectionError(f"cannot connect to Redis: {exc!r}") from exc
        transport = self._wire
        assert transport is not None
        greeting: list[Command] = []
        if self._password is not None:
            auth: list[bytes | str | int] = ["AUTH"]
            if self._username:
                auth.append(self._username)
            auth.append(self._password)
            greeting.append(auth)
        if self._db:
            greeting.append(["SELECT", self._db])
        futures = self._send(transport, greeting) if greeting else []
        # Commands may follow the greeting at once: they are answered after it.
        self._transport = transport
        for future in futures:
            await future

    def _arm(self) -> None:
        """A deadline for the oldest call waiting (the command timeout), or none if idle."""
        self._disarm()
        if self._waiters and self._command_timeout:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self._command_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(RedisTimeoutError("Redis did not answer in time"))

    def _fail(self, error: Exception) -> None:
        """Fail every waiting call and drop the connection (its replies can no longer be paired)."""
        self._fail_waiters(error)
        wire, self._transport, self._wire = self._wire, None, None
        if wire is not None:
            wire.abort()

    def _fail_waiters(self, error: Exception) -> None:
        waiters, self._waiters = self._waiters, deque()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)
                waiter.exception()  # Retrieved: a caller may have gone.


class Pipes:
    """A :class:`CommandPipe` per Redis client that one can stand in for."""

    def __init__(self) -> None:
        # By the client's id; the clients are kept, so an id is never reused.
        self._pipes: dict[int, tuple[Redis, CommandPipe | None]] = {}

    def of(self, client: Redis) -> CommandPipe | None:
        """The pipe for ``client``'s server, or None where redis-py must carry on (TLS, Unix)."""
        entry = self._pipes.get(id(client))
        if entry is None:
            entry = self._pipes[id(client)] = (client, _pipe_for(client))
        return entry[1]

    def close(self) -> None:
        """Close every pipe."""
        for _, pipe in self._pipes.values():
            if pipe is not None:
                pipe.close()
        self._pipes.clear()


def _pipe_for(client: Redis) -> CommandPipe | None:
    pool = client.connection_pool
    options: dict[str, Any] = pool.connection_kwargs
    if options.get("ssl") or options.get("credential_provider") is not None:
        return None
    locate: Locate
    if isinstance(pool, SentinelConnectionPool):
        if "SSL" in pool.connection_class.__name__:
            return None
        locate = pool.get_master_address
    elif pool.connection_class is Connection:
        address = (str(options.get("host", "localhost")), int(options.get("port", 6379)))

        async def fixed() -> tuple[str, int]:
            return address

        locate = fixed
    else:
        return None
    return CommandPipe(
        locate,
        username=options.get("username"),
        password=options.get("password"),
        db=int(options.get("db") or 0),
        connect_timeout=options.get("socket_connect_timeout"),
        command_timeout=options.get("socket_timeout"),
    )
