"""What a publishing request's head must pass before its body is read (pure checks).

Each check reads the request's header fields as a mapping by lower-case
name (an ``HTTPHeaders``, or the standalone server's plain dict) and raises
the :class:`~tornado_channels.web.errors.ApiError` that refuses it, so that
nothing unauthorized or oversized is buffered.  None does I/O or needs
Tornado's request objects, except a token's verification, which is handed
a factory that builds the request on demand (a token's claims are kept on
it for the hooks).  publish_request.py runs them in order: the method, the
channel name, the credentials, the origin, the idempotency key, the size.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.batch import InvalidBatch, parse_batch
from ..core.channels import InvalidChannel, Target, parse_target
from ..core.grants import Claims
from ..core.idempotency import InvalidIdempotencyKey, parse_key
from . import origins
from .errors import ApiError, invalid_channel
from .publish_body import DISCARD_LIMIT
from .tokens import Guard, bearer_of, caller_of, carries_key, query_token, wrong_key

if TYPE_CHECKING:
    from tornado.httputil import HTTPServerRequest

    from .config import ChannelConfig


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who publishes, as the request's credentials say."""

    #: Whether the request carries the publish key (then ``on_publish`` is skipped).
    keyed: bool
    #: The claims of the token the request carried, when it publishes with one.
    claims: Claims | None
    #: Who publishes, to scope its idempotency key (tokens.caller_of): a
    #: token's bearer; None for the trusted caller.
    caller: str | None


#: The publish key's bearer, and a request on a server that checks no one.
#: Made once: only a token's credentials are made per request.
KEYED = Credentials(True, None, None)
ANONYMOUS = Credentials(False, None, None)


def check_method(method: str) -> None:
    """Refuse every method but POST (405, with ``Allow``)."""
    if method != "POST":
        raise ApiError(
            405,
            "method_not_allowed",
            f"{method} not allowed: only POST publishes",
            {"Allow": "POST"},
        )


def target_of(path: str) -> Target:
    """The channel or subtree ``path`` names; raise the 400 ``invalid_channel`` if none."""
    try:
        return parse_target(path)
    except InvalidChannel as bad_channel:
        raise invalid_channel(bad_channel) from None


def credentials(
    headers: Mapping[str, str],
    uri: str,
    key: str | None,
    guard: Guard,
    request: Callable[[], HTTPServerRequest],
) -> Credentials:
    """Who publishes: a backend with the publish key, or a client with a token.

    ``Authorization: Bearer <publish key>`` publishes anywhere.  Where
    tokens are on, a request that carries one (``?token=`` in ``uri``, or a
    Bearer credential shaped like a JWT) publishes where it grants (checked
    per target, once the body is read); ``request`` builds the request its
    claims are kept on.  Once any credential is configured (a ``key`` or
    tokens), a request with neither is refused (401), and a Bearer
    credential that is neither the key nor a token is a wrong key (403; see
    tokens.wrong_key).  With nothing configured, anyone publishes.
    """
    if carries_key(headers, key):
        return KEYED  # The trusted caller: its idempotency keys are the unscoped ones.
    bearer = bearer_of(headers)
    if wrong_key(bearer, key, guard):
        raise ApiError(403, "forbidden", "wrong publish key")
    if guard.enabled:
        # The same precedence as tokens.token_of: the query's, then the header's.
        token = query_token(uri.partition("?")[2])
        if token is None:
            token = bearer
        if token is not None:
            claims = guard.authenticate(request(), token)
            assert claims is not None  # A guard with a verifier verifies or raises.
            return Credentials(False, claims, caller_of(claims, token))
    if key is None and not guard.enabled:
        return ANONYMOUS  # Nothing configured: an open server, as the original.
    needed = "the header 'Authorization: Bearer <key>'" if key is not None else ""
    if guard.enabled:
        grant = "a token with a publish grant (?token= or Authorization: Bearer)"
        needed = f"{needed} or {grant}" if needed else grant
    raise ApiError(
        401,
        "unauthorized",
        f"publishing needs {needed}",
        {"WWW-Authenticate": 'Bearer realm="publish"'},
    )


def check_origin(headers: Mapping[str, str], trusted: Collection[str]) -> None:
    """Refuse cross-site POSTs from browsers unless their origin is ``trusted`` (403).

    The policy every edge applies (origins.py), which this edge, not being a
    RequestHandler, applies whatever the application's
    ``cross_origin_protection`` setting.
    """
    if not origins.allowed(headers, trusted):
        origin = headers.get("origin")
        raise ApiError(403, "forbidden", f"cross-site publishing from {origin!r} is not allowed")


def idempotency_key(headers: Mapping[str, str]) -> str | None:
    """The request's ``Idempotency-Key``, if it has one; raise the 400 if it is malformed."""
    key = headers.get("idempotency-key")
    if key is None:
        return None
    try:
        return parse_key(key)
    except InvalidIdempotencyKey as bad_key:
        raise ApiError(400, "invalid_idempotency_key", str(bad_key)) from None


def check_size(headers: Mapping[str, str], limit: int, batch: bool) -> None:
    """Refuse a declared ``Content-Length`` past ``limit`` (413; see :func:`too_large`)."""
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_large(limit, batch)


def too_large(limit: int, batch: bool) -> ApiError:
    """The 413 for a body past ``limit``: a batch's, or a message's."""
    if batch:
        error = "batch_too_large"
        limit_text = f"the batch limit of {limit} bytes"
    else:
        error = "message_too_large"
        limit_text = f"the maximum message size of {limit} bytes"
    return ApiError(413, error, f"the body exceeds {limit_text}")


def has_body(headers: Mapping[str, str]) -> bool:
    """Whether the request declares a body."""
    return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers


def must_answer_now(headers: Mapping[str, str], lingers: bool) -> bool:
    """Whether a refusal is answered at once, or only after the body (see DISCARD_LIMIT).

    ``lingers`` says whether the connection keeps an answer given mid-body
    from being lost (the standalone server's wire reads and drops the rest
    of the body, then closes gracefully).  Tornado's server ends a
    connection answered before its request was read (even one with no
    body), so there the answer waits for the end of the request unless the
    client is waiting for it to send its body.
    """
    if lingers:
        return True
    if not has_body(headers):
        return False  # The request ends at once: answered once it is read.
    if headers.get("expect", "").lower() == "100-continue":
        return True  # The client waits for a word before it sends the body.
    if "transfer-encoding" in headers:
        return False  # Counted as it arrives: refused at once past the limit.
    length = headers.get("content-length", "0")
    return not length.isdigit() or int(length) > DISCARD_LIMIT


def batch_of(body: bytes, config: ChannelConfig) -> list[tuple[Target, bytes]]:
    """The messages of a ``POST /_/publish`` body, checked whole against ``config``'s limits.

    A malformed batch is a 400 and one too long a 413, naming the entry at
    fault (``index``) when there is one.
    """
    try:
        return parse_batch(
            body,
            max_messages=config.max_batch_messages,
            max_message_size=config.max_message_size,
        )
    except InvalidBatch as exc:
        details = {} if exc.index is None else {"index": exc.index}
        status = 413 if exc.too_large else 400
        raise ApiError(status, exc.error, str(exc), None, details) from None
