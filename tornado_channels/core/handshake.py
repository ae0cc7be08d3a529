"""The WebSocket opening handshake, checked and answered (pure: RFC 6455 section 4.2).

:func:`client_key` checks a request's headers and returns its
``Sec-WebSocket-Key``, or raises :class:`HandshakeError` with the status to
answer; :func:`switching_protocols` is the 101 answer for that key.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class HandshakeError(Exception):
    """A malformed handshake: answer ``status`` with ``error``, ``message`` and ``headers``."""

    def __init__(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}


def client_key(headers: Mapping[str, str]) -> str:
    """The client's ``Sec-WebSocket-Key``, once its handshake is found well formed.

    ``headers`` is looked up by canonical names (``Upgrade``, ...), as
    Tornado's case-insensitive ``HTTPHeaders`` allow.
    """
    if headers.get("Upgrade", "").lower() != "websocket":
        raise HandshakeError(400, "invalid_handshake", 'can "Upgrade" only to "websocket"')
    tokens = [token.strip().lower() for token in headers.get("Connection", "").split(",")]
    if "upgrade" not in tokens:
        raise HandshakeError(400, "invalid_handshake", '"Connection" must include "Upgrade"')
    if headers.get("Sec-WebSocket-Version") != "13":
        raise HandshakeError(
            426,
            "unsupported_version",
            "only WebSocket version 13 is supported",
            {"Sec-WebSocket-Version": "13"},
        )
    key = headers.get("Sec-WebSocket-Key", "").strip()
    if not key or not headers.get("Host"):
        raise HandshakeError(400, "invalid_handshake", "missing Sec-WebSocket-Key or Host")
    return key


def accept_key(key: str) -> bytes:
    """The ``Sec-WebSocket-Accept`` value that answers ``key``."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest())


def switching_protocols(key: str, extensions: str | None = None) -> bytes:
    """The whole 101 answer to a handshake with ``key``, agreeing to ``extensions`` if given."""
    agreed = (
        b"Sec-WebSocket-Extensions: " + extensions.encode("ascii") + b"\r\n" if extensions else b""
    )
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
        + accept_key(key)
        + b"\r\n"
        + agreed
        + b"\r\n"
    )
