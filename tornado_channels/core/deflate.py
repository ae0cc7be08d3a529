"""permessage-deflate (RFC 7692), where one compressed frame serves every subscriber (pure).

With ``server_no_context_takeover`` every message the server sends is
compressed on its own, with nothing carried over from the one before: the
compressed bytes of a message depend only on the message and on the window
the client allowed (``server_max_window_bits``).  So a message is deflated once
per process for each :class:`Deflate` parameter set, and those bytes go to
every subscriber that negotiated it; no compressor is kept per connection.

What clients send is inflated by an :class:`Inflater`, with a hard bound on
the inflated size.  A client that keeps its context between messages (it did
not offer ``client_no_context_takeover``) needs its decompressor kept between
its messages: that one is made on its first compressed message, not before,
so a connection that never sends one costs nothing.

:func:`negotiate` reads a ``Sec-WebSocket-Extensions`` offer and returns the
:class:`Agreement` to answer with, or None: an offer this server cannot serve
(unknown or malformed parameters) is declined, never a reason to fail the
handshake.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass

EXTENSION = "permessage-deflate"
#: Every deflated message ends with this empty stored block; it is left off the wire (7.2.1).
_TAIL = b"\x00\x00\xff\xff"
#: A window size's legal spelling: 8 to 15, no leading zero (RFC 7692 section 7.1.2.1).
_BITS = re.compile(r"(?:[89]|1[0-5])\Z")
#: zlib cannot deflate with a 256-byte window (raw deflate needs 9 bits or more).
_SMALLEST_DEFLATE_WINDOW = 9
#: Deflate's level: 6 (zlib's default) is within 1% of 9 on JSON, and faster.
_LEVEL = 6
# A token (RFC 7230), and a quoted string, for reading the header.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_PARAM = re.compile(rf"\s*({_TOKEN})\s*(?:=\s*({_TOKEN}|{_QUOTED}))?\s*\Z")


class InflateError(Exception):
    """A compressed client message cannot be inflated (``too_big``: it passed the bound)."""

    def __init__(self, reason: str, too_big: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.too_big = too_big


@dataclass(frozen=True, slots=True)
class Deflate:
    """One way of compressing outgoing messages: the parameter set frames are shared by.

    ``window_bits`` is the window the client allowed; messages smaller than
    ``threshold`` bytes go uncompressed (they gain little).
    """

    window_bits: int = 15
    threshold: int = 256

    def compress(self, body: bytes) -> bytes | None:
        """``body`` deflated on its own, without its tail; None when it goes uncompressed.

        Uncompressed: below the threshold, when it would not get smaller, or
        with an 8-bit window (zlib deflates with 9 bits at least; a frame
        without RSV1 is always allowed).
        """
        if len(body) < self.threshold or self.window_bits < _SMALLEST_DEFLATE_WINDOW:
            return None
        # A fresh compressor per message: this is what no context takeover
        # means, and nothing is kept between messages or per connection.
        compressor = zlib.compressobj(_LEVEL, zlib.DEFLATED, -self.window_bits)
        data = compressor.compress(body) + compressor.flush(zlib.Z_SYNC_FLUSH)
        if data.endswith(_TAIL):
            data = data[: -len(_TAIL)]
        return data if len(data) < len(body) else None


@dataclass(frozen=True, slots=True)
class Agreement:
    """What one connection negotiated: how to send to it, how to read it, and the answer."""

    #: How messages to this connection are compressed (shared with every alike).
    outbound: Deflate
    #: The window the client compresses with (15 unless it said less).
    client_window_bits: int
    #: Whether the client starts every message afresh (no decompressor kept for it).
    client_no_context_takeover: bool
    #: The ``Sec-WebSocket-Extensions`` value of the 101 answer.
    response: str

    def inflater(self) -> Inflater:
        """A reader of this client's compressed messages."""
        return Inflater(self.client_window_bits, not self.client_no_context_takeover)


def parse_offers(header: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """The extensions a ``Sec-WebSocket-Extensions`` header offers, in order, with their parameters.

    Raises ValueError for a header that is not an extension list (RFC 6455
    section 9.1).  Quoted values are unquoted.
    """
    offers: list[tuple[str, list[tuple[str, str | None]]]] = []
    for extension in _split(header, ","):
        if not extension.strip():
            continue  # Empty list elements are allowed (RFC 7230 section 7).
        name, *params = _split(extension, ";")
        if not re.fullmatch(rf"\s*{_TOKEN}\s*", name):
            raise ValueError(f"not an extension name: {name.strip()!r}")
        parsed: list[tuple[str, str | None]] = []
        for param in params:
            match = _PARAM.match(param)
            if match is None:
                raise ValueError(f"not an extension parameter: {param.strip()!r}")
            key, value = match.group(1), match.group(2)
            if value is not None and value.startswith('"'):
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            parsed.append((key.lower(), value))
        offers.append((name.strip().lower(), parsed))
    return offers


def _split(text: str, separator: str) -> list[str]:
    """``text`` split at ``separator``, except inside quoted strings."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def negotiate(header: str | None, threshold: int) -> Agreement | None:
    """The agreement to answer the client's offers with, or None for no compression.

    The first permessage-deflate offer this server can serve wins.  The
    answer always says ``server_no_context_takeover``; it honours
    ``client_no_context_takeover`` and ``client_max_window_bits`` (echoing a
    value, or leaving the client its default), and keeps to the client's
    ``server_max_window_bits``.  An offer with an unknown, repeated or
    malformed parameter is declined, and so is a header that cannot be read.
    """
    if not header:
        return None
    try:
        offers = parse_offers(header)
    except ValueError:
        return None
    for name, params in offers:
        if name == EXTENSION:
            agreement = _accept(params, threshold)
            if agreement is not None:
                return agreement
    return None


def _accept(params: list[tuple[str, str | None]], threshold: int) -> Agreement | None:
    """The agreement for one offer, or None to decline it."""
    seen: dict[str, str | None] = {}
    for key, value in params:
        if key in seen:
            return None  # Repeated parameters: decline (RFC 7692 section 7.1).
        seen[key] = value
    server_bits = 15
    client_bits = 15
    answer = [EXTENSION, "server_no_context_takeover"]
    for key, value in seen.items():
        if key in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                return None
        elif key == "server_max_window_bits":
            if value is None or not _BITS.match(value):
                return None
            server_bits = int(value)
        elif key == "client_max_window_bits":
            if value is not None:
                if not _BITS.match(value):
                    return None
                client_bits = int(value)
        else:
            return None
    no_takeover = "client_no_context_takeover" in seen
    if no_takeover:
        answer.append("client_no_context_takeover")
    if "server_max_window_bits" in seen:
        answer.append(f"server_max_window_bits={server_bits}")
    if seen.get("client_max_window_bits") is not None:
        answer.append(f"client_max_window_bits={client_bits}")
    return Agreement(Deflate(server_bits, threshold), client_bits, no_takeover, "; ".join(answer))


class Inflater:
    """Inflates one client's compressed messages, never past a bound.

    With context takeover (``takeover``), a message may refer to the ones
    before it, so the decompressor lives as long as the connection once the
    client has sent a compressed message (about 7 KiB plus the window, 32 KiB
    at 15 bits).  Without, each message gets its own, dropped when it ends.
    """

    __slots__ = ("_decompressor", "takeover", "window_bits")

    def __init__(self, window_bits: int = 15, takeover: bool = True) -> None:
        # A larger window reads whatever a smaller one wrote; zlib's own
        # deflate uses 9 bits when asked for 8.
        self.window_bits = max(window_bits, _SMALLEST_DEFLATE_WINDOW)
        self.takeover = takeover
        self._decompressor: zlib._Decompress | None = None

    @property
    def holding(self) -> bool:
        """Whether a decompressor is kept (between messages, only with context takeover)."""
        return self._decompressor is not None

    def inflate(self, data: bytes, room: int, final: bool) -> bytes:
        """Inflate the next fragment of a message: at most ``room`` bytes, or InflateError.

        ``final`` ends the message.  Past ``room`` it stops at once: no more
        than ``room + 1`` bytes are ever made, whatever the input inflates to.
        """
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(-self.window_bits)
        try:
            out = decompressor.decompress(data, room + 1)
            if final and len(out) <= room:
                out += decompressor.decompress(_TAIL, room - len(out) + 1)
        except zlib.error as exc:
            self._decompressor = None
            raise InflateError(f"compressed data is invalid: {exc}") from None
        if len(out) > room or decompressor.unconsumed_tail:
            self._decompressor = None
            raise InflateError("message too big", too_big=True)
        if final and (not self.takeover or decompressor.eof):
            # No context to keep (or the client ended its stream: the next
            # message starts a new one).
            self._decompressor = None
        return out
