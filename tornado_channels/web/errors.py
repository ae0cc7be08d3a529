"""Refusals: one error type and one JSON body for every edge (handlers, publishing, the wire).

Every error this server sends is ``{"error": "<code>", "message": "<text>"}``
(plus details, such as the index of a batch entry at fault), with the
status and headers the refusal needs.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from http import HTTPStatus
from typing import Any

import tornado.web
from tornado.log import app_log, gen_log

from ..core.channels import InvalidChannel
from . import _tornado
from .hooks import Allow, Reject, resolve

JSON_TYPE = "application/json; charset=UTF-8"


class ApiError(tornado.web.HTTPError):
    """An HTTP error answered with ``{"error": code, "message": text}`` and ``headers``."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str,
        headers: dict[str, str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        # HTTPError formats log_message with %; keep user text out of the format.
        super().__init__(status, "%s", message)
        self.error = error
        self.message = message
        # Carried here because Tornado clears a handler's headers before write_error.
        self.headers = headers or {}
        #: More fields for the JSON body (e.g. which entry of a batch is at fault).
        self.details = details or {}

    def document(self) -> dict[str, Any]:
        """What the JSON body of this refusal holds."""
        return error_document(self.error, self.message, **self.details)


def error_document(error: str, message: str, **details: Any) -> dict[str, Any]:
    """What the JSON body of every refusal holds."""
    return {"error": error, "message": message, **details}


def error_body(error: str, message: str, **details: Any) -> bytes:
    """The JSON body every refusal has."""
    return json.dumps(error_document(error, message, **details)).encode()


def status_error(status: int) -> str:
    """The ``error`` code for a bare status (``404`` -> ``not_found``)."""
    return reason(status).lower().replace(" ", "_").replace("-", "_")


def reason(status: int) -> str:
    """The standard reason phrase of ``status``."""
    return _REASONS.get(status, "Unknown")


# Looked up per answer: HTTPStatus(status) is an Enum call, slow for what it does.
_REASONS = {status.value: status.phrase for status in HTTPStatus}


def invalid_channel(exc: InvalidChannel) -> ApiError:
    """The 400 for a path that is not a valid channel name."""
    return ApiError(400, "invalid_channel", str(exc))


def broker_unavailable(exc: Exception) -> ApiError:
    """The 503 for a publish or subscription the broker cannot take now."""
    return ApiError(503, "broker_unavailable", str(exc), {"Retry-After": "1"})


async def authorize(
    decision: bool | Allow | Awaitable[bool] | Awaitable[bool | Allow], refusal: str
) -> Allow | None:
    """Raise a 403 unless an ``authorize_*`` hook's decision allows the request.

    ``refusal`` is the message for a plain False; a :class:`Reject` gives its
    own.  Returns the hook's :class:`Allow`, when it answered one.
    """
    try:
        allowed = await resolve(decision)
    except Reject as exc:
        raise ApiError(403, "forbidden", exc.reason) from None
    if not allowed:
        raise ApiError(403, "forbidden", refusal)
    return allowed if isinstance(allowed, Allow) else None


class JSONErrorsMixin(tornado.web.RequestHandler):
    """Every error this handler sends is a JSON body naming the problem.

    A 405 says in ``Allow`` which methods the path takes: those the handler
    implements, or ``ALLOW`` when others reach it through other routes.
    """

    #: The methods the path takes, when not just those this handler implements.
    ALLOW: tuple[str, ...] = ()

    def allowed_methods(self) -> tuple[str, ...]:
        """What a 405 lists in ``Allow``."""
        if self.ALLOW:
            return self.ALLOW
        base = tornado.web.RequestHandler
        return tuple(
            method
            for method in self.SUPPORTED_METHODS
            if getattr(type(self), method.lower(), None) is not getattr(base, method.lower(), None)
        )

    def _request_summary(self) -> str:
        """The access log's view of the request, with any ``token=`` hidden (see _tornado.py)."""
        return _tornado.request_summary(self)

    def log_exception(self, typ: Any, value: Any, tb: Any) -> None:
        """Log server errors only, naming the request by its redacted summary alone."""
        # A client error is already in the access log (at WARNING); logging
        # it again here would double every line a bad client causes.
        if isinstance(value, ApiError) and value.status_code < 500:
            return
        if isinstance(value, tornado.web.HTTPError):
            text = value.get_message()
            if text:
                gen_log.warning(
                    "%d %s: %s", value.status_code, self._request_summary(), _tornado.redact(text)
                )
            return
        # Tornado's own line adds repr(self.request): the whole URI and every
        # header, a ?token= and an Authorization: Bearer among them.
        app_log.error("Uncaught exception %s", self._request_summary(), exc_info=(typ, value, tb))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Answer ``{"error": code, "message": text}``."""
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            error, message, details = exc.error, exc.message, exc.details
            for name, value in exc.headers.items():
                self.set_header(name, value)
        else:
            error, message, details = status_error(status_code), reason(status_code), {}
        if status_code == 405:
            allowed = self.allowed_methods()
            self.set_header("Allow", ", ".join(allowed))
            message = f"{self.request.method} not allowed here"
            if allowed:
                message += f"; use {' or '.join(allowed)}"
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(error_body(error, message, **details))
