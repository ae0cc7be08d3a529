"""Publishing over HTTP from any Python program: :class:`Publisher`, and what both share.

Both keep a pool of keep-alive connections, raise the typed errors of
errors.py, and retry as retry.py says.  The sync one uses the standard
library's ``http.client`` (pool.py: no dependency, and the cheapest client
per request); the async one (async_publisher.py) httpx's ``AsyncClient``.  A publish without an
``Idempotency-Key`` gets a fresh one of its own while retries are on, so a
retry after a dropped connection or a ``504`` is answered with the first
attempt's position instead of publishing twice (``auto_idempotency=False``
turns that off: then such failures are raised, never retried).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from . import api
from .api import Data, Message, Request
from .closing import Closing
from .errors import ChannelsError
from .pool import ConnectionPool
from .retry import Retry, retryable

#: Seconds each attempt may take (connecting, sending, waiting for the answer).
TIMEOUT = 5.0
#: Keep-alive connections kept per publisher.
POOL_SIZE = 10


class _Base:
    """What both publishers share: where to publish, with which credential, how to retry."""

    def __init__(
        self,
        url: str,
        *,
        key: str | None,
        retry: Retry,
        auto_idempotency: bool,
    ) -> None:
        self.url = url
        self._origin, self._prefix = api.base_path(url)
        self._key = key
        self.retry = retry
        self._auto_idempotency = auto_idempotency

    def _key_for(self, given: str | None) -> str | None:
        if given is not None:
            return given
        if self._auto_idempotency and self.retry.attempts:
            return api.new_idempotency_key()
        return None

    def _one(self, target: str, data: Data, idempotency_key: str | None) -> Request:
        return api.publish_one(
            self._prefix,
            target,
            data,
            key=self._key,
            idempotency_key=self._key_for(idempotency_key),
        )

    def _many(
        self, messages: list[Message] | Mapping[str, Data], idempotency_key: str | None
    ) -> Request:
        return api.publish_many(
            self._prefix, messages, key=self._key, idempotency_key=self._key_for(idempotency_key)
        )


def _listed(messages: Iterable[Message] | Mapping[str, Data]) -> list[Message] | Mapping[str, Data]:
    return messages if isinstance(messages, Mapping) else list(messages)


class Publisher(_Base, Closing):
    """Publish to a tornado_channels server from synchronous code (Django, Flask, Celery, scripts).

    No event loop is involved; one publisher is safe to share between threads.

    :param url: the server, e.g. ``http://127.0.0.1:5000`` (with its mount
        prefix when embedded: ``http://host:8888/live``).
    :param key: the publish key (``--publish-key``), or a token that grants publishing.
    :param timeout: seconds each attempt may take.
    :param retry: how often and how long to retry (:data:`~.retry.NO_RETRY`: never).
    :param auto_idempotency: give each publish without a key a fresh ``Idempotency-Key``.
    :param pool_size: keep-alive connections kept open.
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
        self._pool = ConnectionPool(self._origin, timeout, pool_size)

    def publish(self, target: str, data: Data, *, idempotency_key: str | None = None) -> str:
        """Publish ``data`` to ``target`` (``"users/1"``; ``"users/"`` for every channel below).

        Returns the message's position; raises a :class:`~.errors.ChannelsError`.
        """
        return api.position(self._send(self._one(target, data, idempotency_key)))

    def publish_many(
        self,
        messages: Iterable[Message] | Mapping[str, Data],
        *,
        idempotency_key: str | None = None,
    ) -> list[str]:
        """Publish ``(target, data)`` pairs in one request, all or none, in order; positions."""
        listed = _listed(messages)
        if not listed:
            return []
        return api.positions(self._send(self._many(listed, idempotency_key)))

    def _send(self, request: Request) -> dict[str, Any]:
        bounds: Iterator[float] = self.retry.delays()
        while True:
            try:
                return api.answer(*self._pool.request(request.path, request.body, request.headers))
            except ChannelsError as exc:
                error = exc
            bound = next(bounds, None)
            if bound is None or not retryable(error, request.keyed):
                raise error
            time.sleep(self.retry.delay(bound, error))

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.close()
