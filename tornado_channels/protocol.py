"""Tornado's WebSocket protocol, answering malformed close frames as RFC 6455 asks.

Tornado's ``WebSocketProtocol13`` echoes whatever close code a client sends,
even one that may never appear on the wire (999, 1005, 2000, ...). RFC 6455
section 7.4 says such a close frame is a protocol error, to be answered with
1002 (Autobahn|Testsuite cases 7.9.1-7.9.9). A close payload of exactly one
byte is a protocol error too (7.3.2), and a reason that is not UTF-8 is
answered with 1007 (7.5.1; Tornado raised UnicodeDecodeError out of its read
loop there). Everything else is Tornado's: valid codes are still echoed.

It also reports every frame it reads to its handler (``frame_received``), so
the per-client rate limit counts fragments and pings, not just messages.

This overrides Tornado's private ``_handle_message`` and ``_receive_frame``
(and builds Tornado's
private ``_WebSocketParams`` in ``ChannelSocketHandler.get_websocket_protocol``),
so it is tied to Tornado 6 (setup.cfg pins ``tornado<7``); tests/test_protocol.py
and ``make conformance`` would notice if either changed shape.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from tornado.websocket import WebSocketProtocol13, _WebSocketParams

from .frames import CLOSE_INVALID_PAYLOAD, CLOSE_PROTOCOL_ERROR, OPCODE_CLOSE

if TYPE_CHECKING:
    from asyncio import Future

__all__ = ["ChannelProtocol13", "WebSocketParams", "close_frame_error", "is_valid_close_code"]

#: Tornado's parameter object for a protocol, built by ``get_websocket_protocol``.
WebSocketParams = _WebSocketParams


def is_valid_close_code(code: int) -> bool:
    """Whether a peer may send ``code`` in a close frame (RFC 6455 section 7.4).

    1000-1003 and 1007-1011 are RFC 6455's own, 1012-1014 were registered with
    IANA since (this server sends 1013 itself), and 3000-4999 belong to
    libraries and applications (this server sends 4008). 1004 is reserved;
    1005, 1006 and 1015 only ever stand for "no close frame was sent"; all
    the rest (0-999, 1016-2999, 5000 and up) is unassigned or not for use.
    """
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def close_frame_error(payload: bytes) -> tuple[int, str] | None:
    """The close code and reason to answer a malformed close ``payload`` with; None if valid."""
    if not payload:
        return None  # No code at all: allowed, and answered with an empty close frame.
    if len(payload) == 1:
        return CLOSE_PROTOCOL_ERROR, "close frame payload of one byte"
    (code,) = struct.unpack("!H", payload[:2])
    if not is_valid_close_code(code):
        return CLOSE_PROTOCOL_ERROR, f"invalid close code {code}"
    try:
        payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        return CLOSE_INVALID_PAYLOAD, "close reason is not UTF-8"
    return None


class ChannelProtocol13(WebSocketProtocol13):
    """``WebSocketProtocol13`` with close-frame validation and per-frame accounting.

    It fails the connection on a malformed close frame, and reports every
    frame received to its handler (for the rate limit).
    """

    async def _receive_frame(self) -> None:
        await super()._receive_frame()
        # Data, continuation and control frames alike: a flood of tiny
        # fragments or of pings costs the client as much as one of messages.
        frame_received = getattr(self.handler, "frame_received", None)
        if frame_received is not None:
            frame_received()

    def _handle_message(self, opcode: int, data: bytes) -> Future[None] | None:
        # Tornado (6.6) handles a close frame here, echoing its code. Only a
        # malformed one is taken over; everything else, including valid close
        # frames, goes on to Tornado exactly as before.
        if opcode == OPCODE_CLOSE and not self.client_terminated:
            error = close_frame_error(data)
            if error is not None:
                self.client_terminated = True
                if len(data) >= 2:
                    # What the peer sent, as Tornado records it (on_close sees it).
                    self.close_code = struct.unpack("!H", data[:2])[0]
                # With client_terminated set, close() sends our close frame
                # and then closes the TCP connection: the connection is failed.
                self.close(*error)
                return None
        return super()._handle_message(opcode, data)
