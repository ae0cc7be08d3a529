"""Hooks that ask the application's backend over HTTP: ``--auth-url`` and ``--publish-url``.

:class:`BackendHooks` is a :class:`~.hooks.ChannelHooks` whose answers come
from HTTP POSTs of JSON (Tornado's ``AsyncHTTPClient``), so a backend in any
language decides from its own session cookie, without minting tokens
(docs/hooks.md has the exact requests and answers):

- ``auth_url``: every subscribe (WebSocket, event stream) and presence
  query that no token or publish key decides is asked ``{"kind":
  "subscribe", "channel", "headers", "remote_ip"}``.  ``200 {"user",
  "expires_in"}`` allows (an :class:`~.hooks.Allow`), ``401``/``403``
  refuse alike, and anything else (a timeout, a connection refused, a 5xx,
  an answer that is not one of those) refuses with ``503 auth_unavailable``:
  never let through.  Answers are kept ``auth_cache`` seconds by
  (credentials, channel), and identical asks made while one is under way
  wait for its answer instead of asking again.
- ``publish_url``: chat messages and POSTs without the publish key are sent
  as ``{"kind": "publish", "channel", "user", "data" | "data_base64"}``
  first: ``200`` with a body publishes that body instead, ``200`` without
  one (or ``304``) the message unchanged, ``204`` drops it, ``403`` refuses,
  and anything else refuses naming the failure.

The standalone server installs it when either URL is set; a mounted
application constructs one (``BackendHooks(BackendSettings(auth_url=...))``)
and passes it to ``make_app``/``channel_routes``, and calls :meth:`close`
when done.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.httputil import HTTPServerRequest

from ..core.channels import Channel, Subtree, Target
from ..core.settings import setting
from .errors import ApiError
from .hooks import Allow, ChannelHooks, Reject
from .tokens import claims_of

log = logging.getLogger("tornado_channels.hooks")

#: Answers kept at most (the oldest go first): bounded whatever clients send.
CACHE_ENTRIES = 10000
#: Requests to the backend under way at once; more wait their turn (within the timeout).
MAX_REQUESTS = 64
#: The request headers forwarded to ``--auth-url``, as they came.
FORWARDED = ("Cookie", "Authorization", "Origin", "User-Agent")
#: The longest message taken from a backend's refusal.
MAX_REASON = 200
#: Seconds between two log lines about a failing backend (an outage is not a line per client).
LOG_EVERY = 10.0

# The request attribute an auth-url's user is kept under (for the publish hook).
_USER = "tornado_channels_backend_user"


@dataclass(frozen=True)
class BackendSettings:
    """Where the application's backend is asked, and how long its answers are trusted."""

    auth_url: str | None = setting(
        None,
        "POST each subscribe and presence query that no token decides to this URL; "
        "200 {user, expires_in} allows, 401/403 refuse, anything else answers 503 "
        "(docs/hooks.md)",
        metavar="URL",
    )
    auth_cache: float = setting(
        5.0,
        "seconds an --auth-url answer is reused for the same credentials and channel "
        "(0: ask every time)",
        metavar="SECONDS",
    )
    auth_timeout: float = setting(
        2.0,
        "seconds to wait for --auth-url (or --publish-url) before refusing (503)",
        metavar="SECONDS",
    )
    publish_url: str | None = setting(
        None,
        "POST each chat message and each POST without the publish key to this URL first; "
        "200 + body rewrites, 204 drops, 403 refuses (docs/hooks.md)",
        metavar="URL",
    )

    def __post_init__(self) -> None:
        for url in (self.auth_url, self.publish_url):
            if url is not None and not url.startswith(("http://", "https://")):
                raise ValueError(f"a hook URL must be http:// or https://: {url!r}")
        if self.auth_cache < 0 or self.auth_timeout <= 0:
            raise ValueError("auth_cache must not be negative, auth_timeout must be positive")

    @property
    def enabled(self) -> bool:
        """Whether any backend hook is configured."""
        return self.auth_url is not None or self.publish_url is not None


# What the backend answered a subscribe: an Allow, or the refusal to raise.
_Answer = Allow | ApiError


class BackendHooks(ChannelHooks):
    """Subscribes and publishes decided by the application's backend (see the module)."""

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings
        self.authenticates = settings.auth_url is not None
        self._client: AsyncHTTPClient | None = None
        # (credentials digest, target) -> (when asked and when it expires, monotonic; answer).
        self._cache: OrderedDict[tuple[bytes, str], tuple[float, float, _Answer]] = OrderedDict()
        # The same keys -> the ask under way: identical asks wait for it.
        self._asking: dict[tuple[bytes, str], asyncio.Future[_Answer]] = {}
        #: Requests sent to the backend, by kind (for tests and metrics).
        self.requests = {"subscribe": 0, "publish": 0}
        #: Asks that waited for an identical one under way instead of asking.
        self.collapsed = 0
        self._logged = -LOG_EVERY

    def close(self) -> None:
        """Close the HTTP client (its connections)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    # Subscribing

    async def authorize_subscribe(self, request: HTTPServerRequest, channel: Channel) -> Allow:
        """Ask ``auth_url`` (unless a token decided: then allowed, by its grants)."""
        return await self._authorize(request, channel)

    async def authorize_subtree(self, request: HTTPServerRequest, subtree: Subtree) -> Allow:
        """Ask ``auth_url`` about ``users/`` (the trailing ``/``: every channel below)."""
        return await self._authorize(request, subtree)

    async def _authorize(self, request: HTTPServerRequest, target: Target) -> Allow:
        claims = claims_of(request)
        if self.settings.auth_url is None or claims is not None:
            # A valid token decides without asking (its grants were checked already).
            return Allow(claims.subject if claims is not None else None)
        headers = {name: request.headers[name] for name in FORWARDED if name in request.headers}
        credentials = "\0".join(
            (request.headers.get("Cookie", ""), request.headers.get("Authorization", ""))
        )
        key = (hashlib.sha256(credentials.encode("utf-8", "surrogateescape")).digest(), str(target))
        answer = self._cached(key)
        if answer is None:
            asking = self._asking.get(key)
            if asking is None:
                asking = asyncio.ensure_future(self._ask(key, target, headers, request.remote_ip))
                self._asking[key] = asking
                asking.add_done_callback(lambda _: self._asking.pop(key, None))
            else:
                self.collapsed += 1
            # Shielded: one waiter that goes away must not cancel the others' answer.
            answer = await asyncio.shield(asking)
        if isinstance(answer, ApiError):
            raise ApiError(answer.status_code, answer.error, answer.message, answer.headers)
        setattr(request, _USER, answer.user)
        return answer

    def _cached(self, key: tuple[bytes, str]) -> _Answer | None:
        entry = self._cache.get(key)
        if entry is None:
            return None
        asked, expires, answer = entry
        now = time.monotonic()
        if expires <= now:
            del self._cache[key]
            return None
        if isinstance(answer, Allow) and answer.expires_in is not None:
            # The backend's expiry counts from when it answered, not from now.
            return Allow(answer.user, answer.expires_in - (now - asked))
        return answer

    async def _ask(
        self, key: tuple[bytes, str], target: Target, headers: dict[str, str], remote_ip: Any
    ) -> _Answer:
        """One request to ``auth_url``, its answer kept for ``auth_cache`` (not a failure's)."""
        url = self.settings.auth_url
        assert url is not None
        body = {"kind": "subscribe", "channel": str(target), "headers": headers}
        body["remote_ip"] = remote_ip
        self.requests["subscribe"] += 1
        try:
            response = await self._post(url, body)
        except _Unavailable as exc:
            return auth_unavailable(str(exc))
        answer = _subscribe_answer(response, target)
        if isinstance(answer, ApiError) and answer.status_code == 503:
            return answer  # Not kept: the next ask may find the backend back.
        ttl = self.settings.auth_cache
        if isinstance(answer, Allow) and answer.expires_in is not None:
            ttl = min(ttl, answer.expires_in)
        if ttl > 0:
            now = time.monotonic()
            self._cache[key] = (now, now + ttl, answer)
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_ENTRIES:
                self._cache.popitem(last=False)
        return answer

    # Publishing

    async def on_publish(
        self, request: HTTPServerRequest, target: Target, payload: bytes
    ) -> bytes | None:
        """A POST without the publish key: ask ``publish_url``; refusals as HTTP answers."""
        if self.settings.publish_url is None:
            return payload
        try:
            return await self._filter(request, target, payload)
        except _Refused as exc:
            raise ApiError(403, "forbidden", exc.reason) from None
        except _Failed as exc:
            raise ApiError(502, "publish_hook_failed", str(exc)) from None
        except _Unavailable as exc:
            raise ApiError(
                503, "publish_hook_unavailable", str(exc), {"Retry-After": "1"}
            ) from None

    async def on_client_message(
        self, request: HTTPServerRequest, channel: Channel, payload: bytes
    ) -> bytes | None:
        """A chat message: ask ``publish_url``; a refusal or failure closes 1008 with the reason."""
        if self.settings.publish_url is None:
            return payload
        try:
            return await self._filter(request, channel, payload)
        except _Refused as exc:
            raise Reject(exc.reason) from None
        except (_Failed, _Unavailable) as exc:
            raise Reject(f"publish hook: {exc}") from None

    async def _filter(
        self, request: HTTPServerRequest, target: Target, payload: bytes
    ) -> bytes | None:
        url = self.settings.publish_url
        assert url is not None
        claims = claims_of(request)
        user = claims.subject if claims is not None else getattr(request, _USER, None)
        body: dict[str, Any] = {"kind": "publish", "channel": str(target), "user": user}
        try:
            body["data"] = payload.decode("utf-8")
        except UnicodeDecodeError:
            body["data_base64"] = base64.b64encode(payload).decode("ascii")
        self.requests["publish"] += 1
        response = await self._post(url, body)
        code = response.code
        if code == 204:
            return None
        if code == 304 or (code == 200 and not response.body):
            return payload
        if code == 200:
            return response.body
        if code == 403:
            raise _Refused(_reason(response, "the backend refused this message"))
        raise _Failed(f"the publish hook answered {code}")

    # HTTP

    async def _post(self, url: str, body: dict[str, Any]) -> HTTPResponse:
        """POST ``body`` as JSON; the response whatever its status, or raise _Unavailable."""
        if self._client is None:
            # Our own instance (not the loop's shared one): its own connection cap and close.
            self._client = AsyncHTTPClient(force_instance=True, max_clients=MAX_REQUESTS)
        timeout = self.settings.auth_timeout
        request = HTTPRequest(
            url,
            method="POST",
            body=json.dumps(body),
            headers={"Content-Type": "application/json"},
            connect_timeout=timeout,
            request_timeout=timeout,
            follow_redirects=False,
        )
        try:
            response = await self._client.fetch(request, raise_error=False)
        except HTTPClientError as exc:  # 599: timeout
            raise self._failing(url, f"the backend did not answer: {exc.message}") from None
        except OSError as exc:
            raise self._failing(url, f"the backend cannot be reached: {exc}") from None
        if response.code >= 500:
            self._failing(url, f"the backend answered {response.code}")
        return response

    def _failing(self, url: str, why: str) -> _Unavailable:
        """Log that the backend fails (at most every LOG_EVERY seconds); the error to raise."""
        now = time.monotonic()
        if now - self._logged >= LOG_EVERY:
            self._logged = now
            # Without any user:password the URL may carry.
            shown = url.split("//", 1)[-1].rpartition("@")[2]
            log.warning("%s: %s (refusing what it should decide)", shown, why)
        return _Unavailable(why)


class _Unavailable(Exception):
    """The backend did not answer (timeout, connection refused)."""


class _Failed(Exception):
    """The backend answered something the hook does not take (a 5xx, a 404...)."""


class _Refused(Exception):
    """The backend refused (403), with its reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def auth_unavailable(message: str) -> ApiError:
    """The 503 for a subscribe the backend could not decide: never let through."""
    return ApiError(503, "auth_unavailable", message, {"Retry-After": "1"})


def _subscribe_answer(response: HTTPResponse, target: Target) -> _Answer:
    """What an ``auth_url`` response says: an Allow, a 401/403 refusal, or a 503."""
    code = response.code
    if code == 401:
        return ApiError(
            401,
            "unauthorized",
            _reason(response, f"subscribing to '{target}' needs credentials"),
            {"WWW-Authenticate": 'Bearer realm="channels"'},
        )
    if code == 403:
        return ApiError(
            403, "forbidden", _reason(response, f"subscribing to '{target}' is not allowed")
        )
    if code != 200:
        return auth_unavailable(f"the auth backend answered {code}")
    try:
        answer = json.loads(response.body or b"{}")
    except ValueError:
        return auth_unavailable("the auth backend's answer is not JSON")
    user = answer.get("user") if isinstance(answer, dict) else None
    expires = answer.get("expires_in") if isinstance(answer, dict) else None
    if (
        not isinstance(answer, dict)
        or (user is not None and not isinstance(user, str))
        or (expires is not None and (not isinstance(expires, int | float) or expires <= 0))
    ):
        return auth_unavailable(
            'the auth backend\'s answer must be {"user": string, "expires_in": seconds > 0}'
        )
    return Allow(user, float(expires) if expires is not None else None)


def _reason(response: HTTPResponse, default: str) -> str:
    """A refusal's ``message`` from the backend's JSON body, else ``default``."""
    try:
        message = json.loads(response.body or b"{}").get("message")
    except (ValueError, AttributeError):
        return default
    return message[:MAX_REASON] if isinstance(message, str) and message else default


def installed(settings: BackendSettings) -> BackendHooks | None:
    """The hooks the standalone server installs for ``settings`` (None when no URL is set)."""
    return BackendHooks(settings) if settings.enabled else None
