"""Clients for both ends of a tornado_channels server, for any Python program.

- :class:`Publisher` (sync) and :class:`AsyncPublisher`: publish over HTTP,
  with a keep-alive pool, timeouts, typed errors and safe retries.
- :class:`RedisPublisher` (and :class:`SyncRedisPublisher`): publish straight
  into the servers' Redis, with the same script, history and positions as the
  servers (no HTTP hop).
- :func:`subscribe`: ``async for message in subscribe("ws://host:5000/users/1")``,
  resumed losslessly across disconnects and restarts.

Publisher and RedisPublisher need nothing more than the package;
AsyncPublisher and subscribe need the ``client`` extra
(``pip install 'tornado_channels[client]'``: httpx and websockets).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    BadRequest,
    BrokerUnavailable,
    ChannelError,
    ChannelsError,
    ConnectionFailed,
    Forbidden,
    IdempotencyKeyReused,
    MessageTooLarge,
    PublishOutcomeUnknown,
    RecoveryFailed,
    Refused,
    ServerError,
    Unauthorized,
)
from .redis_publisher import RedisPublisher, SyncRedisPublisher
from .retry import NO_RETRY, Retry

if TYPE_CHECKING:
    from .async_publisher import AsyncPublisher
    from .publisher import Publisher
    from .subscriber import Message, Recovery, Subscription, subscribe

#: Names imported on first use, so Publisher and RedisPublisher work without the ``client`` extra.
_LAZY = {
    "AsyncPublisher": "async_publisher",
    "Publisher": "publisher",
    "Message": "subscriber",
    "Recovery": "subscriber",
    "Subscription": "subscriber",
    "subscribe": "subscriber",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "NO_RETRY",
    "AsyncPublisher",
    "BadRequest",
    "BrokerUnavailable",
    "ChannelError",
    "ChannelsError",
    "ConnectionFailed",
    "Forbidden",
    "IdempotencyKeyReused",
    "Message",
    "MessageTooLarge",
    "PublishOutcomeUnknown",
    "Publisher",
    "Recovery",
    "RecoveryFailed",
    "RedisPublisher",
    "Refused",
    "Retry",
    "ServerError",
    "Subscription",
    "SyncRedisPublisher",
    "Unauthorized",
    "subscribe",
]
