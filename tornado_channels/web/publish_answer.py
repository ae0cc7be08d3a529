"""What a publish is answered, written one way, and the access-log line for it.

Every answer is JSON built by ``json.dumps`` from a dict: the 202's below
(:func:`published`, :func:`dropped`, :func:`published_batch`), or a refusal's
``{"error", "message"}`` (``ApiError.document``).  :func:`write` alone puts
one on the connection, with the same fields whichever server carries it;
the publishing request (publish_request.py) calls it once per request.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tornado.log import access_log

from ..brokers.base import (
    BrokerUnavailable,
    IdempotencyConflict,
    PublishError,
    PublishOutcomeUnknown,
)
from ..core.channels import Channel, Target
from ..core.http1 import http_date
from ..core.publication import Position
from .errors import JSON_TYPE, ApiError, broker_unavailable, reason
from .server_connection import ServerConnection
from .tokens import redact


def published(target: Target, size: int, position: Position) -> dict[str, Any]:
    """The 202 of ``POST /<channel>``: where the message of ``size`` bytes was published."""
    key = "channel" if isinstance(target, Channel) else "subtree"
    return {"published": True, key: str(target), "bytes": size, "position": str(position)}


def dropped(target: Target) -> dict[str, Any]:
    """The 202 of a message the ``on_publish`` hook dropped: nothing was published."""
    key = "channel" if isinstance(target, Channel) else "subtree"
    return {"published": False, "dropped": True, key: str(target)}


def published_batch(positions: Sequence[Position]) -> dict[str, Any]:
    """The 202 of ``POST /_/publish``: how many messages were published, and where."""
    texts = list(map(str, positions))
    return {"published": len(texts), "positions": texts}


def write(
    connection: ServerConnection,
    method: str,
    status: int,
    document: Mapping[str, Any],
    headers: Mapping[str, str] | None,
    mid_body: bool,
) -> None:
    """Write ``document`` as the JSON answer of ``status``, with ``headers``, and finish.

    ``mid_body`` says the request still has body to come: a connection that
    does not linger (Tornado's server) closes after the answer, and says so.
    """
    data = json.dumps(document).encode()
    fields = {
        "Content-Type": JSON_TYPE,
        "Content-Length": str(len(data)),
        "Date": http_date(),
        "Cache-Control": "no-store",
        **(headers or {}),
    }
    if mid_body and not connection.lingers:
        # Tornado's server closes a connection answered mid-body: say so.
        fields["Connection"] = "close"
    # A HEAD answer has the headers of the GET it stands for, and no body.
    chunk = None if method == "HEAD" else data
    connection.write_answer(status, reason(status), fields, chunk)


def log_access(
    status: int, method: str, uri: str, connection: ServerConnection, started: float
) -> None:
    """The access-log line RequestHandler would write, when anything would print it.

    ``started`` is the request's ``time.monotonic()``; a ``?token=`` in
    ``uri`` is hidden (tokens.redact).  Nothing is formatted, nor the
    client's address asked, when the line would not be printed.
    """
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if access_log.isEnabledFor(level):
        elapsed = 1000 * (time.monotonic() - started)
        summary = f"{method} {redact(uri)} ({connection.remote_ip})"
        access_log.log(level, "%d %s %.2fms", status, summary, elapsed)


def broker_refusal(exc: PublishError) -> ApiError:
    """The answer to the broker's refusal of a publish (422, 503, 504).

    Raises ``exc`` itself when it has no answer: a bug, answered 500.
    """
    if isinstance(exc, IdempotencyConflict):
        return ApiError(422, "idempotency_key_reused", f"{exc}: a retry must send the same message")
    if isinstance(exc, PublishOutcomeUnknown):
        # Not retried here: without an idempotency key a retry could deliver
        # the message twice; with one, the client's retry is exact.
        return ApiError(504, "publish_outcome_unknown", str(exc))
    if isinstance(exc, BrokerUnavailable):
        return broker_unavailable(exc)
    raise exc
