"""The HTTP server's own limits under the channel routes, declared once for both servers.

The standalone server's wire applies them (its ``--idle-timeout`` and
``--body-timeout`` default to :data:`IDLE_TIMEOUT` and :data:`BODY_TIMEOUT`).
An application that mounts the routes serves them with Tornado's own
``HTTPServer``, whose timeouts default to an hour: a slow client
(slowloris) could hold a connection that long.  The routes cannot change
that server's settings, so the application passes
:func:`http_server_options` to ``app.listen`` (or ``HTTPServer``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..core.http1 import MAX_HEAD
from .config import ChannelConfig
from .publish_body import DISCARD_LIMIT

#: Seconds a connection may take to send a request's headers, or sit idle between requests.
IDLE_TIMEOUT = 10.0
#: Seconds a request may take to send its body.
BODY_TIMEOUT = 10.0


def http_server_options(
    config: ChannelConfig | None = None,
    *,
    idle_timeout: float = IDLE_TIMEOUT,
    body_timeout: float = BODY_TIMEOUT,
    max_body_size: int | None = None,
    max_header_size: int = MAX_HEAD,
    **options: Any,
) -> dict[str, Any]:
    """Keyword arguments for Tornado's ``HTTPServer`` (or ``app.listen``) with the server's limits.

    ``idle_timeout`` and ``body_timeout`` default to the standalone server's
    ``--idle-timeout`` and ``--body-timeout``; ``max_header_size`` to the
    longest request head it reads.  ``max_body_size`` defaults to the
    largest body the channel routes read before they answer (the largest
    message or batch they take, and at least the 16 MiB a publish refusal
    reads so that it reaches a client that sends its whole body first):
    Tornado's server answers a bigger one with a bare ``400`` itself.
    ``config`` and ``options`` (:class:`~tornado_channels.web.config.ChannelConfig`
    fields, as given to ``channel_routes``) size it.
    """
    if config is None:
        config = ChannelConfig(**options)
    elif options:
        config = dataclasses.replace(config, **options)
    if max_body_size is None:
        max_body_size = max(config.max_message_size, config.max_batch_bytes, DISCARD_LIMIT)
    return {
        "idle_connection_timeout": idle_timeout,
        "body_timeout": body_timeout,
        "max_body_size": max_body_size,
        "max_header_size": max_header_size,
    }
