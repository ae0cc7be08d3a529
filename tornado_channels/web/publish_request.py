"""One publishing request (``POST /<channel>``, ``POST /_/publish``), from its head to its answer.

A :class:`PublishRequest` is a plain :class:`~tornado.httputil.HTTPMessageDelegate`
(no ``RequestHandler``: see publishing.py).  What it reads of the request is
its method, target and header fields, as a mapping; the whole
:class:`~tornado.httputil.HTTPServerRequest` is built only when something
needs it (a token to verify, a host application's ``authorize_publish``
hook), so the standalone server's shortcut (publishing.PublishShortcut) can
serve the common publish without building Tornado's request objects at all.

- before the body: the channel name, the publish key, cross-site origins,
  the declared size (so nothing unauthorized or oversized is buffered);
- after it: the ``authorize_publish`` hook, then the node publishes;
- every answer is JSON (``{"error", "message"}`` on refusals), as elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from tornado import httputil
from tornado.log import access_log

from ..brokers.base import (
    BrokerUnavailable,
    IdempotencyConflict,
    PublishError,
    PublishOutcomeUnknown,
)
from ..core.batch import InvalidBatch, parse_batch
from ..core.channels import Channel, InvalidChannel, Target, parse_target
from ..core.grants import Claims
from ..core.http1 import http_date
from ..core.idempotency import InvalidIdempotencyKey, parse_key
from ..core.publication import Receipt
from . import origins
from .errors import JSON_TYPE, ApiError, authorize, broker_unavailable, invalid_channel, reason
from .hooks import Reject, resolve
from .server_connection import ServerConnection
from .tokens import bearer_of, caller_of, carries_key, query_token, redact, wrong_key

if TYPE_CHECKING:
    from .context import MountContext


class PublishEndpoint(Protocol):
    """What one publish reads of its route (publishing.py's ``PublishEndpoint``)."""

    #: What the mount point's routes share.
    mount: MountContext
    #: ``POST /_/publish`` rather than ``POST /<channel>``.
    batch: bool
    #: Whether the hooks decide who publishes, and filter what is POSTed without the key.
    custom_authorization: bool
    custom_publish: bool
    #: Publishes whose answers are still being written (the loop holds tasks weakly).
    tasks: set[asyncio.Task[None]]


log = logging.getLogger("tornado_channels.publishing")

#: On a server that closes a connection answered before its body was read
#: (Tornado's own), a refusal waits for a body up to this size, reading and
#: dropping it, so a client that sends its whole body before reading gets
#: the answer instead of a reset (and keeps its connection).
DISCARD_LIMIT = 16 << 20


class PublishRequest(httputil.HTTPMessageDelegate):
    """One publishing request, from its headers to its answer.

    ``headers`` are the request's fields, read by lower-case name with
    repeats comma-joined: an ``HTTPHeaders`` (any case works there), or the
    standalone server's plain dict (``RequestHead.by_name``, a lookup per
    field instead of a case-folding one); ``request`` is Tornado's request,
    or what builds it on demand.
    """

    #: Who publishes, to scope its idempotency key (tokens.caller_of): set by
    #: check_credentials for a token's bearer; None for the trusted caller.
    caller: str | None = None
    #: Whether the request carries the publish key (then ``on_publish`` is skipped).
    keyed = False

    def __init__(
        self,
        endpoint: PublishEndpoint,
        connection: ServerConnection,
        method: str,
        uri: str,
        headers: Mapping[str, str],
        path: str,
        request: httputil.HTTPServerRequest | Callable[[], httputil.HTTPServerRequest],
    ) -> None:
        self.endpoint = endpoint
        self.connection = connection
        self.method = method
        self.uri = uri
        self.headers = headers
        self.path = path
        self._request = request
        self.target: Target | None = None
        self.limit = (
            endpoint.mount.config.max_batch_bytes
            if endpoint.batch
            else endpoint.mount.config.max_message_size
        )
        self.body = bytearray()
        self.too_large = False
        # A refusal decided from the headers, answered once the body is read.
        self.deferred: ApiError | None = None
        # The claims of the token the request carried, when it publishes with one.
        self.claims: Claims | None = None
        # The request's Idempotency-Key, when it has one.
        self.idempotency_key: str | None = None
        self.discarded = 0
        self.finished_reading = False
        self.answered = False
        self.in_flight = False
        self.started = time.monotonic()

    @property
    def request(self) -> httputil.HTTPServerRequest:
        """Tornado's request (built on first use when the shortcut served this one)."""
        request = self._request
        if not isinstance(request, httputil.HTTPServerRequest):
            try:
                request = self._request = request()
            except httputil.HTTPInputError as exc:
                # What Tornado's request refuses (a query past a lowered limit).
                raise ApiError(400, "bad_request", str(exc)) from None
        return request

    # HTTPMessageDelegate

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> None:
        """Refuse what can be refused before the body: name, method, key, origin, size."""
        self.head_received()

    def head_received(self) -> None:
        """The checks of :meth:`headers_received`, for a caller that has no Tornado objects."""
        try:
            self.check_headers()
        except ApiError as exc:
            if self.must_answer_now():
                self.refuse(exc)
            else:
                self.deferred = exc

    def data_received(self, chunk: bytes) -> None:
        """Collect the body, keeping nothing once it passes the limit (or after a refusal)."""
        # A chunked body has no Content-Length to refuse up front: count, and
        # stop keeping bytes once past the limit.
        if self.deferred is not None:
            self.discarded += len(chunk)
            if self.discarded > DISCARD_LIMIT:
                self.refuse(self.deferred)  # A chunked body past the bound: no more waiting.
            return
        if self.answered or self.too_large:
            return
        if len(self.body) + len(chunk) > self.limit:
            self.too_large = True
            self.body = bytearray()
        else:
            self.body += chunk

    def finish(self) -> None:
        """The body is complete: publish it, at once (and in a task if it has to wait)."""
        self.finished_reading = True
        if self.answered:
            return
        if self.deferred is not None:
            self.refuse(self.deferred)
            return
        task = run_eagerly(self.publish(), self.connection.loop)
        if task is None:
            return  # Published and answered already (the embedded broker never waits).
        tasks = self.endpoint.tasks
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        # The task answers every outcome itself; this only keeps a bug from
        # passing silently (and the exception from going unretrieved).
        task.add_done_callback(_log_failure)

    def on_connection_close(self) -> None:
        """The client went away before its answer: this publish is no longer in flight."""
        self.end_flight()

    # The request

    def lingers(self) -> bool:
        """Whether the connection keeps an answer given mid-body from being lost.

        The standalone server's wire does (it reads and drops the rest of the
        body, then closes gracefully); Tornado's own server closes at once.
        """
        return self.connection.lingers

    def has_body(self) -> bool:
        """Whether the request declares a body."""
        headers = self.headers
        return headers.get("content-length", "0") != "0" or "transfer-encoding" in headers

    def must_answer_now(self) -> bool:
        """Whether a refusal is answered at once, or only after the body (see DISCARD_LIMIT).

        Tornado's server ends a connection answered before its request was
        read (even one with no body), so there the answer waits for the end
        of the request unless the client is waiting for it to send its body.
        """
        headers = self.headers
        if self.lingers():
            return True
        if not self.has_body():
            return False  # The request ends at once: answered from finish().
        if headers.get("expect", "").lower() == "100-continue":
            return True  # The client waits for a word before it sends the body.
        if "transfer-encoding" in headers:
            return False  # Counted as it arrives: refused at once past the limit.
        length = headers.get("content-length", "0")
        return not length.isdigit() or int(length) > DISCARD_LIMIT

    def check_headers(self) -> None:
        """Raise the ApiError that refuses the request before its body, if any."""
        endpoint = self.endpoint
        if self.method != "POST":
            raise ApiError(
                405,
                "method_not_allowed",
                f"{self.method} not allowed: only POST publishes",
                {"Allow": "POST"},
            )
        if not endpoint.batch:
            try:
                self.target = parse_target(self.path)
            except InvalidChannel as bad_channel:
                raise invalid_channel(bad_channel) from None
        self.check_credentials()
        self.check_origin()
        headers = self.headers
        key = headers.get("idempotency-key")
        if key is not None:
            try:
                self.idempotency_key = parse_key(key)
            except InvalidIdempotencyKey as bad_key:
                raise ApiError(400, "invalid_idempotency_key", str(bad_key)) from None
        # Counted from here, so a shutdown waits for bodies still arriving.
        self.in_flight = True
        endpoint.mount.in_flight.started()
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            raise self.too_large_error()

    def check_credentials(self) -> None:
        """Who publishes: a backend with the publish key, or a client with a token.

        ``Authorization: Bearer <publish key>`` publishes anywhere.  Where
        tokens are on, a request that carries one (``?token=``, or a Bearer
        credential shaped like a JWT) publishes where it grants (checked per
        target, in :meth:`authorize`).  Once any credential is configured
        (a key or tokens), a request with neither is refused (401), and a
        Bearer credential that is neither the key nor a token is a wrong key
        (403; see tokens.wrong_key).  With nothing configured, anyone publishes.
        """
        endpoint = self.endpoint
        key = endpoint.mount.config.publish_key
        guard = endpoint.mount.guard
        headers = self.headers
        if carries_key(headers, key):
            self.keyed = True
            return  # The trusted caller: its idempotency keys are the unscoped ones.
        bearer = bearer_of(headers)
        if wrong_key(bearer, key, guard):
            raise ApiError(403, "forbidden", "wrong publish key")
        if guard.enabled:
            # The same precedence as tokens.token_of: the query's, then the header's.
            token = query_token(self.uri.partition("?")[2])
            if token is None:
                token = bearer
            if token is not None:
                claims = guard.authenticate(self.request, token)
                assert claims is not None  # A guard with a verifier verifies or raises.
                self.claims = claims
                self.caller = caller_of(claims, token)
                return
        if key is None and not guard.enabled:
            return  # Nothing configured: an open server, as the original.
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

    def check_origin(self) -> None:
        """Refuse cross-site POSTs from browsers unless their origin is trusted.

        The policy every edge applies (origins.py), which this edge, not
        being a RequestHandler, applies whatever the application's
        ``cross_origin_protection`` setting.
        """
        if not origins.allowed(self.headers, self.endpoint.mount.config.trusted_origins):
            origin = self.headers.get("origin")
            raise ApiError(
                403, "forbidden", f"cross-site publishing from {origin!r} is not allowed"
            )

    async def publish(self) -> None:
        """Authorize, publish, answer: 202 with the position(s), or the refusal."""
        try:
            if self.too_large:
                raise self.too_large_error()
            if self.endpoint.batch:
                answer, replayed = await self.publish_batch(bytes(self.body))
            else:
                answer, replayed = await self.publish_one(bytes(self.body))
        except ApiError as exc:
            self.refuse(exc)
        except Exception:
            log.exception("publishing failed")
            self.refuse(ApiError(500, "internal_error", "the server failed to publish"))
        else:
            # A replay answers exactly what the first attempt was answered.
            headers = {"Idempotent-Replayed": "true"} if replayed else None
            self.answer(202, answer, headers)

    async def submit(self, messages: list[tuple[Target, bytes]], batch: bool) -> Receipt:
        """Publish through the node with the request's idempotency key; refusals as answers.

        The key is scoped to the caller, so another caller's guess of it
        neither replays this one's answer nor refuses its own publish.
        """
        try:
            return await self.endpoint.mount.node.submit(
                messages, idempotency_key=self.idempotency_key, batch=batch, caller=self.caller
            )
        except PublishError as exc:
            raise broker_refusal(exc) from None

    async def publish_one(self, payload: bytes) -> tuple[bytes, bool]:
        """``POST /<channel>``: the body is the message."""
        target = self.target
        assert target is not None
        if self.claims is not None or self.endpoint.custom_authorization:
            await self.authorize(target)
        key = "channel" if isinstance(target, Channel) else "subtree"
        # The answer json.dumps would write (names escaped by it), without its dict walk.
        name = json.dumps(str(target))
        if self.endpoint.custom_publish and not self.keyed:
            filtered = await self.filter(target, payload)
            if filtered is None:
                return f'{{"published": false, "dropped": true, "{key}": {name}}}'.encode(), False
            payload = filtered
        receipt = await self.submit([(target, payload)], False)
        position = receipt.positions[0]
        answer = f'{{"published": true, "{key}": {name}, "bytes": {len(payload)}, '
        return f'{answer}"position": "{position}"}}'.encode(), receipt.replayed

    async def publish_batch(self, body: bytes) -> tuple[bytes, bool]:
        """``POST /_/publish``: checked whole, then published as one broker operation."""
        config = self.endpoint.mount.config
        try:
            messages = parse_batch(
                body,
                max_messages=config.max_batch_messages,
                max_message_size=config.max_message_size,
            )
        except InvalidBatch as exc:
            details = {} if exc.index is None else {"index": exc.index}
            status = 413 if exc.too_large else 400
            raise ApiError(status, exc.error, str(exc), None, details) from None
        if self.endpoint.custom_publish and not self.keyed:
            # A batch is all or none: one message dropped or rewritten would break that.
            raise ApiError(
                403,
                "publish_key_required",
                "publishing a batch here needs the publish key (messages without it go through "
                "the publish hook one POST at a time)",
            )
        for target in dict.fromkeys(target for target, _ in messages):
            await self.authorize(target)
        if not messages:
            return json.dumps({"published": 0, "positions": []}).encode(), False
        receipt = await self.submit(messages, True)
        positions = list(map(str, receipt.positions))
        answer = {"published": len(positions), "positions": positions}
        return json.dumps(answer).encode(), receipt.replayed

    async def authorize(self, target: Target) -> None:
        """Check a token's grant, then ask the ``authorize_publish`` hook; raise the 403 if not."""
        if self.claims is not None and not self.claims.publish.allows(target):
            raise ApiError(403, "forbidden", f"the token does not grant publishing to '{target}'")
        if not self.endpoint.custom_authorization:
            return  # The default hook lets everyone publish: no request to build for it.
        await authorize(
            self.endpoint.mount.hooks.authorize_publish(self.request, target),
            f"publishing to '{target}' is not allowed",
        )

    async def filter(self, target: Target, payload: bytes) -> bytes | None:
        """The ``on_publish`` hook's version of the message (None: dropped); raise its refusal."""
        try:
            return await resolve(
                self.endpoint.mount.hooks.on_publish(self.request, target, payload)
            )
        except Reject as exc:
            raise ApiError(403, "forbidden", exc.reason) from None

    def too_large_error(self) -> ApiError:
        """The 413 for a body past the limit."""
        if self.endpoint.batch:
            error = "batch_too_large"
            limit = f"the batch limit of {self.limit} bytes"
        else:
            error = "message_too_large"
            limit = f"the maximum message size of {self.limit} bytes"
        return ApiError(413, error, f"the body exceeds {limit}")

    # The answer

    def refuse(self, exc: ApiError) -> None:
        """Answer ``{"error": code, "message": text}`` with the error's status and headers."""
        self.answer(exc.status_code, exc.body(), exc.headers)

    def answer(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        """Write the JSON answer and finish the request (once; later calls do nothing)."""
        if self.answered:
            return
        self.answered = True
        # A HEAD answer has the headers of the GET it stands for, and no body.
        chunk = None if self.method == "HEAD" else data
        fields = {
            "Content-Type": JSON_TYPE,
            "Content-Length": str(len(data)),
            "Date": http_date(),
            "Cache-Control": "no-store",
            **(headers or {}),
        }
        if not self.finished_reading and self.has_body() and not self.connection.lingers:
            # Tornado's server closes a connection answered mid-body: say so.
            fields["Connection"] = "close"
        self.connection.write_answer(status, reason(status), fields, chunk)
        self.end_flight()
        self.log(status)

    def end_flight(self) -> None:
        """End this publish's flight: a shutdown no longer waits for it."""
        if self.in_flight:
            self.in_flight = False
            self.endpoint.mount.in_flight.finished()

    def log(self, status: int) -> None:
        """The access-log line RequestHandler would write, when anything would print it."""
        level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
        if access_log.isEnabledFor(level):
            elapsed = 1000 * (time.monotonic() - self.started)
            remote_ip = self.connection.remote_ip
            summary = f"{self.method} {redact(self.uri)} ({remote_ip})"
            access_log.log(level, "%d %s %.2fms", status, summary, elapsed)


def run_eagerly(
    coroutine: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop
) -> asyncio.Task[None] | None:
    """Run ``coroutine`` now up to its first wait; a task carries on from there.

    Returns None when it finished without waiting.  What Python 3.12's eager
    task factory does: a publish on the embedded broker never waits, and a
    task per POST (created, scheduled, run one pass of the loop later) was a
    tenth of its cost.
    """
    try:
        awaited = coroutine.send(None)
    except StopIteration:
        return None
    return loop.create_task(_carry_on(coroutine, awaited))


async def _carry_on(coroutine: Coroutine[Any, Any, None], awaited: Any) -> None:
    """Drive ``coroutine`` (suspended on ``awaited``) to its end, as its task would."""
    while True:
        try:
            if awaited is None:
                await asyncio.sleep(0)  # A bare yield: one pass of the loop.
            else:
                # Handed over as a task takes it (Task.__step): the flag the
                # coroutine's own await raised must be down for this await.
                awaited._asyncio_future_blocking = False
                await awaited
        except BaseException as exc:  # noqa: BLE001 - handed on to the coroutine, as a task does
            if awaited is None or not awaited.done():
                # This task was cancelled while the coroutine waited: tell it.
                try:
                    awaited = coroutine.throw(exc)
                except StopIteration:
                    return
                continue
            # Otherwise the future's own outcome, which the coroutine reads itself.
        try:
            awaited = coroutine.send(None)
        except StopIteration:
            return


def broker_refusal(exc: PublishError) -> ApiError:
    """The answer to the broker's refusal of a publish (422, 503, 504)."""
    if isinstance(exc, IdempotencyConflict):
        return ApiError(422, "idempotency_key_reused", f"{exc}: a retry must send the same message")
    if isinstance(exc, PublishOutcomeUnknown):
        # Not retried here: without an idempotency key a retry could deliver
        # the message twice; with one, the client's retry is exact.
        return ApiError(504, "publish_outcome_unknown", str(exc))
    if isinstance(exc, BrokerUnavailable):
        return broker_unavailable(exc)
    raise exc  # No answer for it: a bug, answered 500 by publish().


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("publishing task failed", exc_info=task.exception())
