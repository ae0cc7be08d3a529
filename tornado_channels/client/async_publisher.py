"""Publishing over HTTP from asyncio code: :class:`AsyncPublisher` (httpx).

httpx's ``AsyncClient`` keeps the pool and the timeouts: asyncio has no HTTP
client of its own, and Tornado's simple client keeps no connection alive.
The requests, answers and retries are the sync Publisher's (publisher.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import httpx

from . import api
from .api import Data, Message, Request
from .closing import AsyncClosing
from .errors import ChannelsError, ConnectionFailed
from .publisher import POOL_SIZE, TIMEOUT, _Base, _listed
from .retry import Retry, retryable


def _limits(pool_size: int) -> httpx.Limits:
    return httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)


def _connection_failed(exc: httpx.TransportError) -> ConnectionFailed:
    """What a transport error means for a retry: whether the request may have been sent."""
    unsent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    what = "could not connect" if unsent else "the connection failed before the answer"
    return ConnectionFailed(f"{what}: {type(exc).__name__}: {exc}", sent=not unsent)


def _read(response: httpx.Response) -> dict[str, Any]:
    return api.answer(response.status_code, response.content, response.headers.get("Retry-After"))


class AsyncPublisher(_Base, AsyncClosing):
    """``Publisher``'s API for asyncio code: every call awaits, none blocks the loop.

    Use it within one event loop (httpx's pool belongs to the loop that opened it).
    """

    def __init__(
        self,
        url: str,
        *,
        key: str | None = None,
        timeout: float = TIMEOUT,
        retry: Retry | None = None,
        auto_idempotency: bool = True,
        pool_size: int = POOL_SIZE,
    ) -> None:
        super().__init__(url, key=key, retry=retry or Retry(), auto_idempotency=auto_idempotency)
        self._http = httpx.AsyncClient(
            base_url=self._origin, timeout=timeout, limits=_limits(pool_size)
        )

    async def publish(self, target: str, data: Data, *, idempotency_key: str | None = None) -> str:
        """Publish ``data`` to ``target``; its position (as ``Publisher.publish``)."""
        return api.position(await self._send(self._one(target, data, idempotency_key)))

    async def publish_many(
        self,
        messages: Iterable[Message] | Mapping[str, Data],
        *,
        idempotency_key: str | None = None,
    ) -> list[str]:
        """Publish ``(target, data)`` pairs in one request; their positions (see Publisher)."""
        listed = _listed(messages)
        if not listed:
            return []
        return api.positions(await self._send(self._many(listed, idempotency_key)))

    async def _send(self, request: Request) -> dict[str, Any]:
        bounds: Iterator[float] = self.retry.delays()
        while True:
            try:
                response = await self._http.post(
                    request.path, content=request.body, headers=request.headers
                )
                return _read(response)
            except httpx.TransportError as exc:
                error: ChannelsError = _connection_failed(exc)
                cause: BaseException = exc
            except ChannelsError as exc:
                error = cause = exc
            bound = next(bounds, None)
            if bound is None or not retryable(error, request.keyed):
                if error is cause:
                    raise error
                raise error from cause
            await asyncio.sleep(self.retry.delay(bound, error))

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._http.aclose()
