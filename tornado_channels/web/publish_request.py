"""One publishing request (``POST /<channel>``, ``POST /_/publish``), from its head to its answer.

A :class:`PublishRequest` is a plain :class:`~tornado.httputil.HTTPMessageDelegate`
(no ``RequestHandler``: see publishing.py).  What it reads of the request is
its method, target and header fields, as a mapping; the whole
:class:`~tornado.httputil.HTTPServerRequest` is built only when something
needs it (a token to verify, a host application's ``authorize_publish``
hook), so the standalone server's shortcut (publishing.PublishShortcut) can
serve the common publish without building Tornado's request objects at all.

It runs the pieces, each of which does one thing, and publishes:

- before the body, the checks (publish_checks.py): the method, the channel
  name, the credentials, cross-site origins, the idempotency key, the
  declared size (so nothing unauthorized or oversized is buffered);
- the body (publish_body.py): kept up to its limit, or dropped after a refusal;
- after it, here: the token's grant and the ``authorize_publish`` hook, the
  ``on_publish`` hook, then the node publishes (at once: eager.py);
- the answer (publish_answer.py): JSON every time, ``{"error", "message"}``
  on refusals, as elsewhere.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from tornado import httputil

from ..brokers.base import PublishError
from ..core.channels import Target
from ..core.publication import Receipt
from .eager import run_eagerly
from .errors import ApiError, authorize
from .hooks import Reject, resolve
from .publish_answer import (
    broker_refusal,
    dropped,
    log_access,
    published,
    published_batch,
    write,
)
from .publish_body import PublishBody
from .publish_checks import (
    ANONYMOUS,
    Credentials,
    batch_of,
    check_method,
    check_origin,
    check_size,
    credentials,
    has_body,
    idempotency_key,
    must_answer_now,
    target_of,
    too_large,
)
from .server_connection import ServerConnection

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


class PublishRequest(httputil.HTTPMessageDelegate):
    """One publishing request, from its headers to its answer.

    ``headers`` are the request's fields, read by lower-case name with
    repeats comma-joined: an ``HTTPHeaders`` (any case works there), or the
    standalone server's plain dict (``RequestHead.by_name``, a lookup per
    field instead of a case-folding one); ``request`` is Tornado's request,
    or what builds it on demand.
    """

    #: What ``POST /<channel>`` publishes to (set by the checks).
    target: Target | None = None
    #: Who publishes (set by the checks; a publish never runs without them).
    credentials: Credentials = ANONYMOUS
    #: The request's Idempotency-Key, when it has one.
    idempotency_key: str | None = None

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
        config = endpoint.mount.config
        self.body = PublishBody(
            config.max_batch_bytes if endpoint.batch else config.max_message_size
        )
        self.finished_reading = False
        self.answered = False
        self.in_flight = False
        self.started = time.monotonic()

    def request(self) -> httputil.HTTPServerRequest:
        """Tornado's request (built on the first call when the shortcut served this one)."""
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
            self.body.discard(exc)
            if must_answer_now(self.headers, self.connection.lingers):
                self.refuse(exc)
            # Otherwise answered once the body is read (see publish_body.DISCARD_LIMIT).

    def data_received(self, chunk: bytes) -> None:
        """Collect the body, keeping nothing once it passes the limit (or after a refusal)."""
        refusal = self.body.receive(chunk)
        if refusal is not None:
            self.refuse(refusal)  # A chunked body past the bound: no more waiting.

    def finish(self) -> None:
        """The body is complete: publish it, at once (and in a task if it has to wait)."""
        self.finished_reading = True
        if self.answered:
            return
        refusal = self.body.refusal
        if refusal is not None:
            self.refuse(refusal)
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

    # Before the body

    def check_headers(self) -> None:
        """Raise the ApiError that refuses the request before its body, if any."""
        endpoint = self.endpoint
        mount = endpoint.mount
        config = mount.config
        headers = self.headers
        check_method(self.method)
        if not endpoint.batch:
            self.target = target_of(self.path)
        self.credentials = credentials(
            headers, self.uri, config.publish_key, mount.guard, self.request
        )
        check_origin(headers, config.trusted_origins)
        self.idempotency_key = idempotency_key(headers)
        # Counted from here, so a shutdown waits for bodies still arriving.
        self.in_flight = True
        mount.in_flight.started()
        check_size(headers, self.body.limit, endpoint.batch)

    # The publish

    async def publish(self) -> None:
        """Authorize, publish, answer: 202 with the position(s), or the refusal."""
        body = self.body
        try:
            if body.too_large:
                raise too_large(body.limit, self.endpoint.batch)
            if self.endpoint.batch:
                answer, replayed = await self.publish_batch(bytes(body.data))
            else:
                answer, replayed = await self.publish_one(bytes(body.data))
        except ApiError as exc:
            self.refuse(exc)
        except Exception:
            log.exception("publishing failed")
            self.refuse(ApiError(500, "internal_error", "the server failed to publish"))
        else:
            # A replay answers exactly what the first attempt was answered.
            headers = {"Idempotent-Replayed": "true"} if replayed else None
            self.answer(202, answer, headers)

    async def publish_one(self, payload: bytes) -> tuple[dict[str, Any], bool]:
        """``POST /<channel>``: the body is the message."""
        target = self.target
        assert target is not None
        endpoint = self.endpoint
        if self.credentials.claims is not None or endpoint.custom_authorization:
            await self.authorize(target)
        if endpoint.custom_publish and not self.credentials.keyed:
            filtered = await self.filter(target, payload)
            if filtered is None:
                return dropped(target), False
            payload = filtered
        receipt = await self.submit([(target, payload)], False)
        return published(target, len(payload), receipt.positions[0]), receipt.replayed

    async def publish_batch(self, body: bytes) -> tuple[dict[str, Any], bool]:
        """``POST /_/publish``: checked whole, then published as one broker operation."""
        messages = batch_of(body, self.endpoint.mount.config)
        if self.endpoint.custom_publish and not self.credentials.keyed:
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
            return published_batch([]), False
        receipt = await self.submit(messages, True)
        return published_batch(receipt.positions), receipt.replayed

    async def authorize(self, target: Target) -> None:
        """Check a token's grant, then ask the ``authorize_publish`` hook; raise the 403 if not."""
        claims = self.credentials.claims
        if claims is not None and not claims.publish.allows(target):
            raise ApiError(403, "forbidden", f"the token does not grant publishing to '{target}'")
        if not self.endpoint.custom_authorization:
            return  # The default hook lets everyone publish: no request to build for it.
        await authorize(
            self.endpoint.mount.hooks.authorize_publish(self.request(), target),
            f"publishing to '{target}' is not allowed",
        )

    async def filter(self, target: Target, payload: bytes) -> bytes | None:
        """The ``on_publish`` hook's version of the message (None: dropped); raise its refusal."""
        try:
            return await resolve(
                self.endpoint.mount.hooks.on_publish(self.request(), target, payload)
            )
        except Reject as exc:
            raise ApiError(403, "forbidden", exc.reason) from None

    async def submit(self, messages: list[tuple[Target, bytes]], batch: bool) -> Receipt:
        """Publish through the node with the request's idempotency key; refusals as answers.

        The key is scoped to the caller, so another caller's guess of it
        neither replays this one's answer nor refuses its own publish.
        """
        try:
            return await self.endpoint.mount.node.submit(
                messages,
                idempotency_key=self.idempotency_key,
                batch=batch,
                caller=self.credentials.caller,
            )
        except PublishError as exc:
            raise broker_refusal(exc) from None

    # The answer

    def refuse(self, exc: ApiError) -> None:
        """Answer ``{"error": code, "message": text}`` with the error's status and headers."""
        self.answer(exc.status_code, exc.document(), exc.headers)

    def answer(
        self, status: int, document: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        """Answer ``document`` (publish_answer.write) and log it, once; later calls do nothing."""
        if self.answered:
            return
        self.answered = True
        connection = self.connection
        mid_body = not self.finished_reading and has_body(self.headers)
        write(connection, self.method, status, document, headers, mid_body)
        self.end_flight()
        log_access(status, self.method, self.uri, connection, self.started)

    def end_flight(self) -> None:
        """End this publish's flight: a shutdown no longer waits for it."""
        if self.in_flight:
            self.in_flight = False
            self.endpoint.mount.in_flight.finished()


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("publishing task failed", exc_info=task.exception())
