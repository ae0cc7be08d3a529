"""What WebSocket clients send: frames parsed and checked as RFC 6455 asks (pure, no I/O).

:class:`FrameReader` takes bytes as they arrive and returns what they complete:
whole messages (fragments joined), pings, pongs and the close frame, each
counted as frames for the rate limit.  Anything a client may not send ends the
reading with a :class:`ProtocolError` naming the close code that fails the
connection:

- 1002: reserved bits or opcodes, an unmasked frame, a fragmented or oversized
  control frame, a continuation with nothing to continue (or a new message in
  the middle of one), a malformed close frame;
- 1007: a text message (or close reason) that is not UTF-8, found as soon as a
  fragment proves it (Autobahn's "fail fast");
- 1009: a message larger than the maximum, found from the frame header,
  before its payload is buffered; or, for a compressed message, as soon as
  inflating it would pass the maximum (before that memory is spent).

With an :class:`~.deflate.Inflater` (permessage-deflate was agreed), a data
message whose first frame has RSV1 set is compressed: it is inflated fragment
by fragment, and checked as the inflated bytes arrive.
"""

from __future__ import annotations

import codecs
import struct
from dataclasses import dataclass

from .deflate import InflateError, Inflater
from .frames import (
    CLOSE_INVALID_PAYLOAD,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_PROTOCOL_ERROR,
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_TEXT,
    RSV1,
)

OPCODE_CONTINUATION = 0x0
OPCODE_PING = 0x9
OPCODE_PONG = 0xA

_DATA = (OPCODE_TEXT, OPCODE_BINARY)
_CONTROL = (OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG)

#: No close code in the close frame (RFC 6455 section 7.1.5); never sent on the wire.
NO_STATUS = 1005


def mask(key: bytes, data: bytes) -> bytes:
    """``data`` XORed with the 4-byte masking ``key`` repeated (RFC 6455 section 5.3).

    The same function masks and unmasks.  Done as one big-integer XOR, which
    CPython runs in C: no loop over the bytes in Python.
    """
    size = len(data)
    if not size:
        return b""
    repeated = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")).to_bytes(
        size, "little"
    )


class ProtocolError(Exception):
    """The client broke the protocol: fail the connection with ``code`` and ``reason``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Inbound:
    """One thing a client sent: a message, a ping, a pong, or its close frame.

    ``opcode`` is the message's (text or binary) or the control frame's.  For
    a close frame, ``code`` and ``reason`` are what it carried (``NO_STATUS``
    and "" when it had no payload).
    """

    opcode: int
    payload: bytes
    code: int = NO_STATUS
    reason: str = ""


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


class _Failed(Exception):
    """A ProtocolError, with what was read before it."""

    def __init__(self, done: list[Inbound], frames: int, error: ProtocolError) -> None:
        super().__init__(str(error))
        self.done = done
        self.frames = frames
        self.error = error


class FrameReader:
    """Parses a client's frames incrementally; holds nothing between messages but a partial frame.

    ``max_message_size`` bounds a whole message (all its fragments), inflated
    or not.  ``inflater`` reads compressed messages (None: RSV1 is refused).
    After an error the reader must not be fed again.
    """

    __slots__ = (
        "_buffer",
        "_compressed",
        "_fragment_opcode",
        "_fragment_size",
        "_fragments",
        "_inflated",
        "_utf8",
        "inflater",
        "limit",
    )

    def __init__(self, max_message_size: int, inflater: Inflater | None = None) -> None:
        self.limit = max_message_size
        self.inflater = inflater
        # Whether the message being reassembled is compressed, and its inflated size so far.
        self._compressed = False
        self._inflated = 0
        # A partial frame, kept until the rest arrives.
        self._buffer = bytearray()
        # The message being reassembled from fragments, when there is one.
        self._fragments: list[bytes] | None = None
        self._fragment_opcode = 0
        self._fragment_size = 0
        self._utf8: codecs.IncrementalDecoder | None = None

    def feed(self, data: bytes) -> tuple[list[Inbound], int, ProtocolError | None]:
        """What ``data`` completes, how many frames it completed, and the error that ends it.

        What came before an error in the same data is returned with it, so a
        valid message just before a bad frame is still handled.
        """
        try:
            return (*self._feed(data), None)
        except _Failed as failed:
            return failed.done, failed.frames, failed.error

    def _feed(self, data: bytes) -> tuple[list[Inbound], int]:
        buffer: bytes | bytearray
        if self._buffer:
            # Appended in place: a large frame arriving in many reads is not
            # copied again with every read.
            self._buffer += data
            buffer = self._buffer
        else:
            buffer = data
        done: list[Inbound] = []
        frames = 0
        pos = 0
        end = len(buffer)
        while end - pos >= 2:
            first, second = buffer[pos], buffer[pos + 1]
            length = second & 0x7F
            header = 2
            if length == 126:
                if end - pos < 4:
                    break
                (length,) = struct.unpack_from("!H", buffer, pos + 2)
                header = 4
            elif length == 127:
                if end - pos < 10:
                    break
                (length,) = struct.unpack_from("!Q", buffer, pos + 2)
                header = 10
            try:
                self._check_header(first, second, length)
            except ProtocolError as error:
                raise _Failed(done, frames, error) from None
            if end - pos < header + 4 + length:
                break
            key = bytes(buffer[pos + header : pos + header + 4])
            start = pos + header + 4
            payload = mask(key, bytes(buffer[start : start + length])) if length else b""
            pos = start + length
            frames += 1
            try:
                inbound = self._frame(first & 0x80, first & 0x0F, payload, first & RSV1)
            except ProtocolError as error:
                raise _Failed(done, frames, error) from None
            if inbound is not None:
                done.append(inbound)
                if inbound.opcode == OPCODE_CLOSE:
                    pos = end  # Nothing after a close frame is read.
                    break
        if pos >= end:
            self._buffer = bytearray()
        elif buffer is self._buffer:
            del self._buffer[:pos]
        else:
            self._buffer = bytearray(buffer[pos:])
        return done, frames

    def _check_header(self, first: int, second: int, length: int) -> None:
        """Refuse a frame from its header alone, before its payload is buffered."""
        opcode = first & 0x0F
        if first & 0x70:
            if first & 0x30 or self.inflater is None:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "reserved bits set (no extension agreed)")
            if opcode not in _DATA:
                # RSV1 marks a message compressed: its first frame only, never control frames.
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "RSV1 set on a control or continuation")
        if not second & 0x80:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
        if opcode in _CONTROL:
            if not first & 0x80:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "fragmented control frame")
            if length > 125:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "control frame payload over 125 bytes")
        elif opcode in _DATA or opcode == OPCODE_CONTINUATION:
            if length >> 63:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "payload length with its top bit set")
            before = self._fragment_size if opcode == OPCODE_CONTINUATION else 0
            if before + length > self._wire_limit(first, opcode):
                raise ProtocolError(CLOSE_MESSAGE_TOO_BIG, "message too big")
        else:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, f"reserved opcode {opcode}")

    def _wire_limit(self, first: int, opcode: int) -> int:
        """The most bytes a message may take on the wire.

        A compressed message's inflated size is bounded as it inflates; on the
        wire it may be a little larger than the maximum when it did not
        shrink (deflate's stored blocks: 5 bytes in 64 KiB).
        """
        compressed = first & RSV1 if opcode != OPCODE_CONTINUATION else self._compressed
        return self.limit + (self.limit >> 12) + 64 if compressed else self.limit

    def _inflate(self, payload: bytes, fin: int) -> bytes:
        """A compressed message's next fragment, inflated within the maximum."""
        assert self.inflater is not None
        try:
            out = self.inflater.inflate(payload, self.limit - self._inflated, bool(fin))
        except InflateError as error:
            code = CLOSE_MESSAGE_TOO_BIG if error.too_big else CLOSE_INVALID_PAYLOAD
            raise ProtocolError(code, error.reason) from None
        self._inflated += len(out)
        return out

    def _frame(self, fin: int, opcode: int, payload: bytes, rsv1: int = 0) -> Inbound | None:
        """One whole frame: a completed message or control frame, or None mid-message."""
        if opcode in _CONTROL:
            if opcode != OPCODE_CLOSE:
                return Inbound(opcode, payload)
            error = close_frame_error(payload)
            if error is not None:
                raise ProtocolError(*error)
            if not payload:
                return Inbound(OPCODE_CLOSE, payload)
            (code,) = struct.unpack("!H", payload[:2])
            return Inbound(OPCODE_CLOSE, payload, code, payload[2:].decode("utf-8"))
        if opcode == OPCODE_CONTINUATION:
            if self._fragments is None:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "continuation frame with no message")
            self._fragment_size += len(payload)
            if self._compressed:
                payload = self._inflate(payload, fin)
            self._fragments.append(payload)
            self._check_text(payload, final=bool(fin))
            if not fin:
                return None
            message = Inbound(self._fragment_opcode, b"".join(self._fragments))
            self._fragments = None
            self._fragment_size = 0
            self._utf8 = None
            self._compressed = False
            self._inflated = 0
            return message
        if self._fragments is not None:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "new message inside a fragmented one")
        wire_size = len(payload)
        if rsv1:
            self._inflated = 0
            payload = self._inflate(payload, fin)
        if fin:
            self._inflated = 0
            if opcode == OPCODE_TEXT:
                try:
                    payload.decode("utf-8")
                except UnicodeDecodeError:
                    raise ProtocolError(CLOSE_INVALID_PAYLOAD, "text is not UTF-8") from None
            return Inbound(opcode, payload)
        self._fragments = [payload]
        self._fragment_opcode = opcode
        self._fragment_size = wire_size
        self._compressed = bool(rsv1)
        if opcode == OPCODE_TEXT:
            self._utf8 = codecs.getincrementaldecoder("utf-8")()
            self._check_text(payload, final=False)
        return None

    def _check_text(self, payload: bytes, final: bool) -> None:
        """Fail a fragmented text message as soon as its bytes cannot be UTF-8."""
        if self._utf8 is None:
            return
        try:
            self._utf8.decode(payload, final)
        except UnicodeDecodeError:
            raise ProtocolError(CLOSE_INVALID_PAYLOAD, "text is not UTF-8") from None
