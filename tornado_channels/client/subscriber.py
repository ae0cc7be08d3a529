"""Subscribing from Python: ``async for message in subscribe(url)``, resumed across every drop.

Built on the ``websockets`` library (its asyncio client does the framing,
pings and closing handshake).  It asks for positions (``?positions=1``),
remembers the last one, and after a disconnect, a server restart or a
``4001`` (token expired: the token provider is asked again) reconnects with
capped, jittered backoff and ``?since=<last position>``: the server replays
what was missed, then reports the outcome (see docs/protocol.md).  Each
message is yielded once, in order.  An outcome of ``recovered: false``
raises :class:`~.errors.RecoveryFailed` (or, with ``outcomes=True``, every
outcome is yielded as a :class:`Recovery`); the iteration goes on from the
position the server gave.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from ..core.publication import Position
from .closing import AsyncClosing
from .errors import ChannelsError, RecoveryFailed, refusal

#: What ``token`` may be: a value, or a function (sync or async) asked before every connect.
TokenOption = str | Callable[[], str | Awaitable[str | None] | None] | None

#: Reconnect backoff: the first delay's bound, its cap (seconds), and how long a
#: connection must stay open before the backoff starts over.
BACKOFF_START = 0.25
BACKOFF_CAP = 10.0
STABLE = 2.0
#: Handshake refusals that another attempt will not change.
PERMANENT = frozenset({400, 401, 403, 404})
#: Items read ahead of the consumer, at most.
QUEUE_SIZE = 1000


@dataclass(frozen=True)
class Message:
    """One message: its position and its data (``str`` for text, ``bytes`` for binary).

    ``channel`` is where it was published to (``"users/1"``, or ``"users/"``
    for a subtree), on a subtree's subscription only.
    """

    position: str
    data: str | bytes
    channel: str | None = None


@dataclass(frozen=True)
class Recovery:
    """A connection's recovery outcome (yielded only with ``outcomes=True``)."""

    recovered: bool
    missed: int
    position: str | None
    reason: str | None = None


class Subscription(AsyncClosing):
    """An async iterator over one channel's (or subtree's) messages; see :func:`subscribe`."""

    def __init__(
        self,
        url: str,
        *,
        since: str | None = None,
        token: TokenOption = None,
        outcomes: bool = False,
        open_timeout: float = 10.0,
        max_size: int | None = 2**24,
    ) -> None:
        self.url = _websocket_url(url)
        #: The last position seen (or adopted from an outcome): where a reconnect resumes.
        self.position: Position | None = Position.parse(since) if since else None
        self._token = token
        self._outcomes = outcomes
        self._open_timeout = open_timeout
        self._max_size = max_size
        self._socket: ClientConnection | None = None
        self._closed = False
        # The connection loop runs as a task that feeds this queue: a consumer
        # that cancels a wait (a timeout) loses nothing, and a full queue stops
        # the reading, which the server sees as a slow consumer.
        self._queue: asyncio.Queue[Message | Recovery | BaseException | None] = asyncio.Queue(
            QUEUE_SIZE
        )
        self._task: asyncio.Task[None] | None = None
        #: Connections opened so far (the first one included).
        self.connections = 0

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Any:
        if self._task is None and not self._closed:
            self._task = asyncio.ensure_future(self._run())
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if item is None:
            self._closed = True
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        return item

    async def aclose(self) -> None:
        """Close the connection with a normal close (1000) and stop iterating."""
        if self._closed and self._task is None:
            return
        self._closed = True
        socket, task = self._socket, self._task
        self._task = None
        if socket is not None:
            await socket.close()
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        # Wake a consumer waiting on another task: the iteration is over.
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def _run(self) -> None:
        """Run the connection loop; whatever ends it is handed to the consumer, then the end."""
        try:
            await self._connections()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the consumer raises it, not this task
            await self._queue.put(exc)
            await self._queue.put(None)

    async def _connections(self) -> None:
        """Connect, read, reconnect with backoff, until closed or refused for good."""
        bound = BACKOFF_START
        loop = asyncio.get_running_loop()
        while not self._closed:
            opened_at: float | None = None
            try:
                url = await self._attempt_url()
                async with connect(
                    url,
                    open_timeout=self._open_timeout,
                    max_size=self._max_size,
                    compression=None,
                    proxy=None,
                ) as socket:
                    self._socket = socket
                    self.connections += 1
                    opened_at = loop.time()
                    async for frame in socket:
                        for item in self._read(frame):
                            await self._queue.put(item)
            except InvalidStatus as exc:
                response = exc.response
                error = refusal(
                    response.status_code,
                    bytes(response.body or b""),
                    response.headers.get("Retry-After"),
                )
                if response.status_code in PERMANENT:
                    await self._queue.put(error)
                    await self._queue.put(None)
                    return
            except (OSError, TimeoutError, WebSocketException):
                pass  # Dropped or refused: reconnect below.
            finally:
                self._socket = None
            if self._closed:
                return
            if opened_at is not None and loop.time() - opened_at >= STABLE:
                bound = BACKOFF_START
            # Jitter between half and all of the bound, which doubles up to the cap.
            await asyncio.sleep(random.uniform(bound / 2, bound))
            bound = min(bound * 2, BACKOFF_CAP)

    async def _attempt_url(self) -> str:
        query: dict[str, str] = (
            {"since": str(self.position)} if self.position is not None else {"positions": "1"}
        )
        token = self._token() if callable(self._token) else self._token
        if inspect.isawaitable(token):
            token = await token
        if token:
            query["token"] = token
        parts = urlsplit(self.url)
        extra = urlencode(query)
        return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))

    def _read(self, frame: str | bytes) -> list[Message | Recovery | RecoveryFailed]:
        """What a frame gives the consumer: its message (none if already seen), or outcome."""
        try:
            parsed = json.loads(frame)
            if not isinstance(parsed, dict) or not ("recovered" in parsed or "position" in parsed):
                raise ValueError("neither a message envelope nor a recovery outcome")
        except ValueError as exc:
            raise ChannelsError(
                f"unreadable frame from {self.url} (not a tornado_channels server?): {exc}"
            ) from None
        if "recovered" in parsed:
            outcome = Recovery(
                bool(parsed["recovered"]),
                int(parsed.get("missed", 0)),
                parsed.get("position"),
                parsed.get("reason"),
            )
            if outcome.position:
                # Where the stream continues: adopted as is, even in a new epoch.
                self.position = Position.parse(outcome.position)
            if self._outcomes:
                return [outcome]
            if not outcome.recovered:
                return [RecoveryFailed(outcome.reason or "unknown", outcome.position)]
            return []
        position = Position.parse(parsed["position"])
        last = self.position
        if last is not None and last.epoch == position.epoch and position.seq <= last.seq:
            return []  # Already yielded (a replay overlapping what came live).
        self.position = position
        channel = parsed.get("channel")
        if "binary" in parsed:
            return [Message(parsed["position"], base64.b64decode(parsed["binary"]), channel)]
        return [Message(parsed["position"], parsed["data"], channel)]


def subscribe(
    url: str,
    *,
    since: str | None = None,
    token: TokenOption = None,
    outcomes: bool = False,
    open_timeout: float = 10.0,
) -> Subscription:
    """Subscribe to ``url`` (``ws://host:5000/users/1``; ``http://`` works too).

    ``since`` resumes from a position; ``token`` is sent as ``?token=`` (a
    function is called before every connect, so it can renew an expiring
    token).  Iterate with ``async for``; close with ``await sub.aclose()`` or
    ``async with subscribe(...) as sub``.  A handshake refused for good (400,
    401, 403) raises its :class:`~.errors.Refused`; anything else reconnects.
    """
    return Subscription(url, since=since, token=token, outcomes=outcomes, open_timeout=open_timeout)


def _websocket_url(url: str) -> str:
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise ValueError(f"a channel URL is ws://, wss://, http:// or https://, not {url!r}")
    return urlunsplit(parts._replace(scheme=scheme, fragment=""))


__all__ = ["Message", "Recovery", "Subscription", "subscribe"]
