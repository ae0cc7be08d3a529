"""The HTTP API as the publishers see it: requests built, answers read (no I/O here).

``POST /<channel>`` (or ``/<prefix>/``) with the message as the body, and
``POST /_/publish`` with ``{"messages": [...]}``; both answer ``202`` with the
position(s), or an error body (see docs/protocol.md).  The sync and async
publishers send what this module builds and hand back what it reads.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from .errors import Refused, ServerError, refusal

#: What a message may be: bytes as they are, text as UTF-8, anything else as its JSON.
Data = str | bytes | bytearray | memoryview | Any
#: One entry of a batch: the target (``"users/1"``, ``"users/"``) and the message.
Message = tuple[str, Data]


@dataclass(frozen=True)
class Request:
    """One publish on the wire: where, what, and with which headers."""

    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    #: Whether it carries an ``Idempotency-Key`` (so any failure may be retried).
    keyed: bool = False


def base_path(url: str) -> tuple[str, str]:
    """``(origin, mount prefix)`` of a server URL: ``http://h:5000/live`` -> the two halves."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"a server URL is http:// or https:// with a host, not {url!r}")
    return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")


def target_path(prefix: str, target: str) -> str:
    """The URL path of ``target`` below the mount ``prefix``, percent-encoded.

    ``.`` and ``..`` segments are encoded too: an HTTP client would resolve
    them away (``a/../b`` -> ``b``), where the server must see and refuse them.
    """
    segments = [
        segment.replace(".", "%2E") if segment in (".", "..") else quote(segment, safe="")
        for segment in target.lstrip("/").split("/")
    ]
    return f"{prefix}/{'/'.join(segments)}"


def payload(data: Data) -> bytes:
    """A message's bytes: bytes as they are, text as UTF-8, anything else as its JSON text."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    return json.dumps(data, separators=(",", ":")).encode("utf-8")


def headers(key: str | None, idempotency_key: str | None, content_type: str) -> dict[str, str]:
    """The headers of a publish: the credential, the idempotency key, the body's type."""
    result = {"Content-Type": content_type}
    if key:
        result["Authorization"] = f"Bearer {key}"
    if idempotency_key is not None:
        result["Idempotency-Key"] = idempotency_key
    return result


def new_idempotency_key() -> str:
    """A fresh key for one publish (and every retry of it): random, never reused."""
    return f"tc-{uuid.uuid4().hex}"


def publish_one(
    prefix: str,
    target: str,
    data: Data,
    *,
    key: str | None,
    idempotency_key: str | None,
) -> Request:
    """``POST /<target>`` with the message as the body."""
    return Request(
        target_path(prefix, target),
        payload(data),
        headers(key, idempotency_key, "application/octet-stream"),
        idempotency_key is not None,
    )


def publish_many(
    prefix: str,
    messages: Iterable[Message] | Mapping[str, Data],
    *,
    key: str | None,
    idempotency_key: str | None,
) -> Request:
    """``POST /_/publish`` with every message: text as ``data``, other bytes as ``data_base64``."""
    pairs = messages.items() if isinstance(messages, Mapping) else messages
    entries = []
    for target, data in pairs:
        raw = payload(data)
        try:
            entries.append({"channel": target, "data": raw.decode("utf-8")})
        except UnicodeDecodeError:
            entries.append({"channel": target, "data_base64": base64.b64encode(raw).decode()})
    body = json.dumps({"messages": entries}, separators=(",", ":")).encode("utf-8")
    return Request(
        f"{prefix}/_/publish",
        body,
        headers(key, idempotency_key, "application/json"),
        idempotency_key is not None,
    )


def answer(status: int, body: bytes, retry_after: str | None) -> dict[str, Any]:
    """The JSON of a ``202``; raise the :class:`~.errors.Refused` an error status names."""
    if status >= 300:
        raise refusal(status, body, retry_after)
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ServerError(status, "unreadable_answer", body[:200].decode("utf-8", "replace"))
    return parsed


def position(answer: dict[str, Any]) -> str:
    """The position in a ``POST /<channel>`` answer."""
    return _text(answer, "position")


def positions(answer: dict[str, Any]) -> list[str]:
    """The positions in a ``POST /_/publish`` answer, one per message, in order."""
    found = answer.get("positions")
    if not isinstance(found, list) or not all(isinstance(item, str) for item in found):
        raise _unreadable(answer, "positions")
    return found


def _text(answer: dict[str, Any], name: str) -> str:
    found = answer.get(name)
    if not isinstance(found, str):
        raise _unreadable(answer, name)
    return found


def _unreadable(answer: dict[str, Any], name: str) -> Refused:
    return ServerError(202, "unreadable_answer", f"no {name!r} in {answer!r}", answer)
