"""WebSocket frames built once per message, and the close codes we send (pure).

Server-to-client frames are never masked (RFC 6455, section 5.1), so the same
frame bytes can be written to every subscriber of a channel: a message is
framed once per process, not once per connection.  Compressed too: a
:class:`MessageFrames` makes each of a message's frames once, per encoding and
per compression parameter set (see core/deflate.py), however many
subscribers take it.
"""

from __future__ import annotations

import base64
import enum
import json
import struct

from .deflate import Deflate

OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8

# Close codes this server sends (README, "Close codes").
#: The server is shutting down or restarting; reconnect (to another process).
CLOSE_GOING_AWAY = 1001
#: The client broke the protocol (a malformed close frame).
CLOSE_PROTOCOL_ERROR = 1002
#: The client's close reason was not UTF-8.
CLOSE_INVALID_PAYLOAD = 1007
#: A hook rejected the client's message or subscription.
CLOSE_POLICY_VIOLATION = 1008
#: A client frame or message exceeded the maximum message size.
CLOSE_MESSAGE_TOO_BIG = 1009
#: An unexpected error on our side while serving this connection.
CLOSE_INTERNAL_ERROR = 1011
#: The broker connection was lost: messages may have been missed; reconnect.
CLOSE_TRY_AGAIN_LATER = 1013
#: The client read too slowly and its outgoing buffer passed the bound; reconnect.
CLOSE_SLOW_CONSUMER = 4008
#: The client's token expired: reconnect (resuming) with a new one.
CLOSE_TOKEN_EXPIRED = 4001


def is_text(payload: bytes) -> bool:
    """Whether ``payload`` is valid UTF-8, and so travels as a text frame."""
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


#: The first header bit an extension may use: permessage-deflate's "compressed".
RSV1 = 0x40


def encode_frame(payload: bytes, opcode: int | None = None, compressed: bool = False) -> bytes:
    """One unmasked, unfragmented frame carrying ``payload``.

    Without an explicit ``opcode``, valid UTF-8 is sent as text and anything
    else as binary, so subscribers receive exactly the published bytes.
    ``compressed`` sets RSV1: ``payload`` is then a deflated message.
    """
    if opcode is None:
        opcode = OPCODE_TEXT if is_text(payload) else OPCODE_BINARY
    length = len(payload)
    first = 0x80 | opcode  # FIN set: never fragmented.
    if compressed:
        first |= RSV1
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length <= 0xFFFF:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload


def close_frame(code: int | None, reason: str | None = None) -> bytes:
    """A close frame with ``code`` and ``reason``, or an empty one when ``code`` is None.

    The reason is cut to fit a control frame (125 bytes with the code), at a
    character boundary: a reason cut inside a character would not be UTF-8,
    and the peer would have to fail the connection (1007).
    """
    if code is None:
        return encode_frame(b"", OPCODE_CLOSE)
    reason_bytes = (reason or "").encode("utf-8")[:123].decode("utf-8", "ignore").encode("utf-8")
    return encode_frame(struct.pack("!H", code) + reason_bytes, OPCODE_CLOSE)


def envelope_frame(position: str, payload: bytes, target: str | None = None) -> bytes:
    """A text frame for clients that asked for positions: the payload and where it sits.

    ``{"position": "<epoch>:<seq>", "data": "<text>"}``, or ``"binary"`` with
    base64 for a payload that is not UTF-8; with ``target``, also the channel
    or subtree it was published to (``"channel"``), for subtree subscribers.
    """
    return encode_frame(envelope(position, payload, target), OPCODE_TEXT)


def envelope(position: str, payload: bytes, target: str | None = None) -> bytes:
    """The JSON of :func:`envelope_frame`, for a WebSocket frame or an event's data."""
    body: dict[str, str] = {"position": position}
    if target is not None:
        body["channel"] = target
    try:
        body["data"] = payload.decode("utf-8")
    except UnicodeDecodeError:
        body["binary"] = base64.b64encode(payload).decode("ascii")
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def control_frame(**fields: object) -> bytes:
    """A text frame carrying a JSON control message (e.g. the outcome of a recovery)."""
    return encode_frame(json.dumps(fields).encode("utf-8"), OPCODE_TEXT)


def sse_event(position: str, payload: bytes) -> bytes:
    """One server-sent event: ``id:`` the position, the payload as ``data:`` lines.

    A payload that is not UTF-8 goes as ``event: binary`` with base64 data.
    SSE has no way to carry a bare CR: CR, LF and CRLF all end a data line.
    """
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        data = base64.b64encode(payload).decode("ascii")
        return f"id: {position}\nevent: binary\ndata: {data}\n\n".encode()
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    data = "".join(f"data: {line}\n" for line in lines)
    return f"id: {position}\n{data}\n".encode()


def sse_labelled_event(position: str, payload: bytes, target: str) -> bytes:
    """A subtree's server-sent event: ``id:`` the position, the labelled envelope as data.

    Many channels share the stream, so each event says which one (the JSON
    of :func:`envelope_frame`, on one line: JSON escapes every line break).
    """
    return b"id: " + position.encode() + b"\ndata: " + envelope(position, payload, target) + b"\n\n"


def sse_control(event: str, event_id: str | None = None, **fields: object) -> bytes:
    """A named server-sent event carrying a JSON object (recovery outcome, close).

    With ``event_id``, EventSource remembers it as its last event id and
    sends it back (``Last-Event-ID``) when it reconnects by itself.
    """
    id_line = f"id: {event_id}\n" if event_id is not None else ""
    return f"{id_line}event: {event}\ndata: {json.dumps(fields)}\n\n".encode()


#: Sent on an idle event stream so proxies and browsers keep it open.
SSE_HEARTBEAT = b": heartbeat\n\n"


class Encoding(enum.Enum):
    """How a subscriber takes messages."""

    #: Each payload as published, in a text or binary WebSocket frame.
    RAW = "raw"
    #: JSON text frames with each message's position (``?positions=1``).
    ENVELOPE = "envelope"
    #: The same, with the channel or subtree each was published to (a subtree's subscribers).
    LABELLED = "labelled"
    #: Server-sent events, positions as event ids.
    SSE = "sse"
    #: The same, each event's data the labelled JSON envelope (a subtree's subscribers).
    SSE_LABELLED = "sse-labelled"

    @property
    def is_sse(self) -> bool:
        """Whether it is an event stream's (control messages are named events there)."""
        return self is Encoding.SSE or self is Encoding.SSE_LABELLED


def encode_for(encoding: Encoding, position: str, payload: bytes, target: str = "") -> bytes:
    """A message as a subscriber with ``encoding`` takes it (``target``: where it was published)."""
    if encoding is Encoding.RAW:
        return encode_frame(payload)
    if encoding is Encoding.ENVELOPE:
        return envelope_frame(position, payload)
    if encoding is Encoding.LABELLED:
        return envelope_frame(position, payload, target)
    if encoding is Encoding.SSE_LABELLED:
        return sse_labelled_event(position, payload, target)
    return sse_event(position, payload)


class MessageFrames:
    """One message's frames, each made once: per encoding, and per compression parameter set.

    The hub asks it for the frame of every group of subscribers that take
    the message alike; the first ask makes the frame, the others get the
    same bytes.  A message below a parameter set's threshold (or that would
    not shrink) is the uncompressed frame, made once for all.
    """

    __slots__ = ("_made", "payload", "position", "target")

    def __init__(self, position: str, payload: bytes, target: str = "") -> None:
        self.position = position
        self.payload = payload
        self.target = target
        self._made: dict[tuple[Encoding, Deflate | None], bytes] = {}

    def frame(self, encoding: Encoding, deflate: Deflate | None = None) -> bytes:
        """The message for subscribers with ``encoding`` and ``deflate`` (None: uncompressed)."""
        if encoding.is_sse:
            deflate = None  # Not a WebSocket: nothing to negotiate.
        key = (encoding, deflate)
        frame = self._made.get(key)
        if frame is None:
            frame = self._made[key] = self._make(encoding, deflate)
        return frame

    def _make(self, encoding: Encoding, deflate: Deflate | None) -> bytes:
        if deflate is None:
            return encode_for(encoding, self.position, self.payload, self.target)
        if encoding is Encoding.RAW:
            body, opcode = self.payload, None
        else:
            target = self.target if encoding is Encoding.LABELLED else None
            body, opcode = envelope(self.position, self.payload, target), OPCODE_TEXT
        compressed = deflate.compress(body)
        if compressed is None:
            return self.frame(encoding, None)
        if opcode is None:
            # The opcode says what the published bytes are, not the deflated ones.
            opcode = OPCODE_TEXT if is_text(body) else OPCODE_BINARY
        return encode_frame(compressed, opcode, compressed=True)


def presence_event_for(encoding: Encoding, kind: str, user: str, channel: str) -> bytes:
    """A join or leave (``?presence=1``): a JSON text frame, or an ``event: presence``."""
    fields = {"presence": kind, "user": user, "channel": channel}
    if encoding.is_sse:
        return sse_control("presence", None, **fields)
    return control_frame(**fields)


def outcome_for(encoding: Encoding, **fields: object) -> bytes:
    """A control message (e.g. the recovery outcome) for a subscriber's encoding.

    Over SSE the outcome's position is also the event's id: every stream's
    first event then carries one, so a plain EventSource that drops before
    any message resumes from there, losing nothing.
    """
    if encoding.is_sse:
        position = fields.get("position")
        return sse_control("recovery", str(position) if position is not None else None, **fields)
    return control_frame(**fields)
