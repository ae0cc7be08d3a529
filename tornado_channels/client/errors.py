"""The errors a client raises: one type per refusal the server names, and the client's own.

A refusal from the server is ``{"error": "<code>", "message": "<text>"}``
with a status (see docs/protocol.md); :func:`refusal` turns it into the
exception named for its code, carrying the status, the code, the message,
the whole body and the ``Retry-After`` header.
"""

from __future__ import annotations

import json
from typing import Any


class ChannelsError(Exception):
    """Anything a tornado_channels client raises."""


class Refused(ChannelsError):
    """The server answered with an error status: what its JSON body says.

    :ivar status: the HTTP status, e.g. 413.
    :ivar error: the body's ``error`` code, e.g. ``"message_too_large"``.
    :ivar message: the body's human text.
    :ivar body: the whole decoded body (it may carry details, such as ``index``).
    :ivar retry_after: seconds from ``Retry-After``, when the server sent one.
    """

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        body: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message
        self.body = body if body is not None else {"error": error, "message": message}
        self.retry_after = retry_after


class BadRequest(Refused):
    """400: the request is malformed (a bad batch, a bad ``Idempotency-Key``, ...)."""


class ChannelError(BadRequest):
    """400 ``invalid_channel``: the target is not a valid channel or subtree name."""


class Unauthorized(Refused):
    """401: no publish key (``unauthorized``), or a token that does not verify."""


class Forbidden(Refused):
    """403: a wrong publish key, a token without the grant, or a hook refused it."""


class MessageTooLarge(Refused):
    """413: the message (or the batch) exceeds the server's limit; nothing was published."""


class IdempotencyKeyReused(Refused):
    """422: the ``Idempotency-Key`` was used for another message; nothing was published."""


class BrokerUnavailable(Refused):
    """503: the server cannot reach its broker; nothing was published (safe to retry)."""


class PublishOutcomeUnknown(Refused):
    """504: Redis did not answer in time; the message may or may not have been published.

    Retried only with an ``Idempotency-Key``, which makes the retry exact.
    """


class ServerError(Refused):
    """Any other error status (a 500, a 404 from a proxy, ...)."""


class ConnectionFailed(ChannelsError):
    """The server could not be reached, or the connection broke before its answer.

    ``sent`` is False when the request surely never reached the server (the
    connection could not be made), so a retry cannot publish twice.
    """

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class RecoveryFailed(ChannelsError):
    """A resumed subscription was told messages were lost: ``{"recovered": false}``.

    :ivar reason: the server's reason (trimmed, expired, a new epoch, ...).
    :ivar position: where the stream continues from (the head of the history).
    """

    def __init__(self, reason: str, position: str | None) -> None:
        super().__init__(f"could not recover missed messages: {reason}")
        self.reason = reason
        self.position = position


#: The exception for each ``error`` code the server sends.
BY_CODE: dict[str, type[Refused]] = {
    "invalid_channel": ChannelError,
    "bad_request": BadRequest,
    "invalid_batch": BadRequest,
    "invalid_idempotency_key": BadRequest,
    "invalid_position": BadRequest,
    "unauthorized": Unauthorized,
    "invalid_token": Unauthorized,
    "token_required": Unauthorized,
    "forbidden": Forbidden,
    "forbidden_origin": Forbidden,
    "message_too_large": MessageTooLarge,
    "batch_too_large": MessageTooLarge,
    "request_too_large": MessageTooLarge,
    "idempotency_key_reused": IdempotencyKeyReused,
    "broker_unavailable": BrokerUnavailable,
    "publish_outcome_unknown": PublishOutcomeUnknown,
}

#: The exception for a status whose body names no known code.
BY_STATUS: dict[int, type[Refused]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    413: MessageTooLarge,
    422: IdempotencyKeyReused,
    503: BrokerUnavailable,
    504: PublishOutcomeUnknown,
}


def refusal(status: int, body: bytes, retry_after: str | None = None) -> Refused:
    """The exception for an error answer: ``status``, its raw ``body``, its ``Retry-After``."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        # Not the server's own answer (a proxy's page, say): keep what it said.
        text = body[:200].decode("utf-8", "replace").strip()
        parsed = {"error": f"http_{status}", "message": text or f"HTTP {status}"}
    error = str(parsed.get("error", f"http_{status}"))
    message = str(parsed.get("message", ""))
    kind = BY_CODE.get(error) or BY_STATUS.get(status) or ServerError
    return kind(status, error, message, parsed, _seconds(retry_after))


def _seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds (the delay form only; a date reads as none)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
