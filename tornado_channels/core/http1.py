"""HTTP/1.1 requests read from a byte stream, strictly (pure, no I/O).

:class:`RequestReader` takes bytes as they arrive and hands out, one at a
time, what they complete: a request's head (:class:`RequestHead`), pieces of
its body, then :data:`END`.  It reads only what it is asked for, so a
pipelined request waits in the buffer until the one before it is answered.

It is strict where leniency lets two parsers disagree about where a request
ends (request smuggling), and says why it refuses, as a status and a short
error code (:class:`BadRequest`):

- a request line of ``method SP target SP HTTP/1.x``; the target may carry
  raw bytes above 0x7F (read later as UTF-8, like their percent-encoded
  form), never a control character or a space;
- header fields ``name: value`` with a token name (no space before the
  colon), no bare CR, no NUL or other control character, no line folding;
- exactly one ``Host`` in HTTP/1.1; at most one ``Content-Length``, all
  digits; ``Transfer-Encoding`` only as ``chunked`` alone (501 otherwise),
  never beside a ``Content-Length``, never in HTTP/1.0;
- chunked bodies with hexadecimal sizes and CRLF after each chunk's data.

Lines may end in CRLF or a bare LF, as RFC 9112 lets a server accept.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from email.utils import formatdate

#: Longest request head (request line and header fields), in bytes: 431 beyond.
MAX_HEAD = 65536
#: Longest request line, in bytes: 414 beyond.
MAX_REQUEST_LINE = 8192
#: Most header fields in one request: 431 beyond.
MAX_FIELDS = 100
#: Longest chunk-size line (with extensions), in bytes.
MAX_CHUNK_LINE = 4096

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e\x80-\xff]+) (HTTP/\d\.\d)")
_NAME = re.compile(_TOKEN)
# A field value: visible characters, obs-text, spaces and tabs; nothing else.
# (Character classes only: every pattern here runs in linear time.)
_VALUE = re.compile(rb"[\t\x20-\x7e\x80-\xff]*")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[\x09\x20-\x7e\x80-\xff]*)?")
# The common case, checked whole in one pass: a head with CRLF line ends and
# nothing to refuse (matched on its Latin-1 text, which maps bytes 1:1).  Any
# head it does not match is read line by line, which says what is wrong.
_TOKEN_TEXT = _TOKEN.decode()
_WELL_FORMED = re.compile(
    f"({_TOKEN_TEXT}) ([\x21-\x7e\x80-\xff]+) (HTTP/[0-9]\\.[0-9])\r\n"
    f"((?:{_TOKEN_TEXT}:[\t\x20-\x7e\x80-\xff]*\r\n)*)\r\n"
)
_WELL_FORMED_FIELD = re.compile(f"({_TOKEN_TEXT}):([\t\x20-\x7e\x80-\xff]*)\r\n")
# RFC 9110 7.2's Host as Tornado reads it (uri-host, then an optional port),
# less the comma: a value Tornado's request would refuse is refused here, 400.
_HOST = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+;=\[\]:]|%[0-9A-Fa-f]{2})*")

_HEAD, _FIXED, _CHUNK_LINE, _CHUNK_DATA, _CHUNK_END, _TRAILERS, _IDLE = range(7)


class _End:
    """The type of :data:`END`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "END"


#: Returned by :meth:`RequestReader.next` once a request's body is complete.
END = _End()


class BadRequest(Exception):
    """A request that cannot be read: answer ``status`` with ``error`` and close."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


@dataclass(slots=True)
class RequestHead:
    """A request's line and header fields, and how its body is framed.

    ``target`` and header values are decoded as Latin-1, which maps every
    byte to one character and back (``target.encode("latin-1")`` is the raw
    target), as Tornado's own server decodes them.
    """

    method: str
    target: str
    version: str
    #: Header fields in the order sent, names as sent.
    fields: list[tuple[str, str]]
    #: The declared Content-Length, or None (chunked, or no body).
    length: int | None
    chunked: bool
    #: Whether the client lets the connection live on after this request.
    keep_alive: bool
    expect_continue: bool
    #: Whether it asks to switch protocols (``Upgrade`` with ``Connection: upgrade``).
    upgrade: bool
    #: Field values by lower-case name; repeated fields joined by commas, as
    #: Tornado's ``HTTPHeaders`` reads them.
    by_name: dict[str, str]

    @property
    def has_body(self) -> bool:
        """Whether a body follows the head."""
        return self.chunked or bool(self.length)

    def field(self, name: str) -> str | None:
        """The value of the field called ``name`` (any case; repeats comma-joined), or None."""
        return self.by_name.get(name.lower())


class RequestReader:
    """Reads requests one after another from the bytes of one connection."""

    __slots__ = ("_buffer", "_remaining", "_scanned", "_state", "head_bytes")

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._state = _HEAD
        # Body bytes still to come in the current fixed-length body or chunk.
        self._remaining = 0
        # How far the buffer was searched for the end of a head: a head that
        # trickles in byte by byte is scanned once, not once per byte.
        self._scanned = 0
        #: Bytes of head (or trailers) read so far for the current request.
        self.head_bytes = 0

    def feed(self, data: bytes) -> None:
        """Add bytes as they arrive."""
        self._buffer += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet handed out."""
        return len(self._buffer)

    @property
    def between_requests(self) -> bool:
        """Whether the last request is complete and no byte of the next one has arrived."""
        return self._state == _HEAD and not self._buffer.strip(b"\r\n")

    @property
    def in_body(self) -> bool:
        """Whether a head was handed out and its body is not yet complete."""
        return self._state not in (_HEAD, _IDLE)

    def take_rest(self) -> bytes:
        """Everything buffered, for a protocol that takes the connection over (WebSocket)."""
        rest = bytes(self._buffer)
        self._buffer.clear()
        self._state = _IDLE
        return rest

    def next(self) -> RequestHead | bytes | _End | None:
        """The next head, piece of body, or END; None until more bytes arrive.

        Raises :class:`BadRequest` for a request that cannot be read; the
        reader must then not be used again.
        """
        state = self._state
        if state == _HEAD:
            return self._head()
        if state == _FIXED:
            return self._fixed()
        if state == _IDLE:
            return None
        return self._chunked()

    # The head

    def _head(self) -> RequestHead | None:
        buffer = self._buffer
        if not buffer:
            return None  # Asked again after each request, mostly with nothing yet.
        # RFC 9112 2.2: empty lines before a request line are ignored.
        start = 0
        while buffer.startswith(b"\r\n", start) or buffer.startswith(b"\n", start):
            start += 2 if buffer[start] == 0x0D else 1
        if start:
            del buffer[:start]
            self._scanned = 0
        end = _head_end(buffer, max(0, self._scanned - 3))
        if end < 0:
            self._scanned = len(buffer)
            if len(buffer) > MAX_REQUEST_LINE and b"\n" not in buffer[:MAX_REQUEST_LINE]:
                raise BadRequest(414, "uri_too_long", "the request line is too long")
            if len(buffer) > MAX_HEAD:
                raise BadRequest(
                    431, "request_header_too_large", f"the request head exceeds {MAX_HEAD} bytes"
                )
            return None
        self._scanned = 0
        if end > MAX_HEAD:
            raise BadRequest(
                431, "request_header_too_large", f"the request head exceeds {MAX_HEAD} bytes"
            )
        raw = bytes(buffer[:end])
        del buffer[:end]
        self.head_bytes = end
        head = _parse_head(raw)
        if head.chunked:
            self._state = _CHUNK_LINE
        elif head.length:
            self._state = _FIXED
            self._remaining = head.length
        else:
            self._state = _FIXED
            self._remaining = 0
        return head

    # Bodies

    def _fixed(self) -> bytes | _End | None:
        if not self._remaining:
            self._state = _HEAD
            return END
        return self._take()

    def _take(self) -> bytes | None:
        """Up to ``_remaining`` body bytes from the buffer; None if it holds none."""
        buffer = self._buffer
        if not buffer:
            return None
        take = min(self._remaining, len(buffer))
        data = bytes(buffer[:take])
        del buffer[:take]
        self._remaining -= take
        return data

    def _chunked(self) -> bytes | _End | None:
        buffer = self._buffer
        while True:
            state = self._state
            if state == _CHUNK_DATA:
                data = self._take()
                if not self._remaining:
                    self._state = _CHUNK_END
                return data
            if state == _CHUNK_END:
                if len(buffer) < 2 and buffer != b"\n":
                    if buffer and buffer != b"\r":
                        raise _bad_chunk("chunk data not followed by CRLF")
                    return None
                if buffer.startswith(b"\r\n"):
                    del buffer[:2]
                elif buffer.startswith(b"\n"):
                    del buffer[:1]
                else:
                    raise _bad_chunk("chunk data not followed by CRLF")
                self._state = _CHUNK_LINE
                continue
            if state == _CHUNK_LINE:
                line = _take_line(buffer, MAX_CHUNK_LINE)
                if line is None:
                    return None
                match = _CHUNK_SIZE.fullmatch(line)
                if match is None:
                    raise _bad_chunk("invalid chunk size line")
                size = int(match.group(1), 16)
                if size:
                    self._state = _CHUNK_DATA
                    self._remaining = size
                else:
                    self._state = _TRAILERS
                continue
            # Trailers: header fields after the last chunk, read and dropped.
            line = _take_line(buffer, MAX_HEAD)
            if line is None:
                return None
            self.head_bytes += len(line) + 2
            if self.head_bytes > MAX_HEAD:
                raise BadRequest(
                    431, "request_header_too_large", "the trailer fields are too large"
                )
            if not line:
                self._state = _HEAD
                return END
            _parse_field(line)


def _head_end(buffer: bytearray, start: int) -> int:
    """Offset just past the empty line that ends a head (searched from ``start``), or -1."""
    crlf = buffer.find(b"\r\n\r\n", start)
    # The common case: no bare LF ends the head earlier (bounds: an earlier
    # end must start before the CRLFCRLF does).
    if (
        crlf >= 0
        and buffer.find(b"\n\n", start, crlf + 2) < 0
        and buffer.find(b"\n\r\n", start, crlf + 3) < 0
    ):
        return crlf + 4
    lf = buffer.find(b"\n\n", start)
    mixed = buffer.find(b"\n\r\n", start)
    ends = [offset + size for offset, size in ((crlf, 4), (lf, 2), (mixed, 3)) if offset >= 0]
    return min(ends) if ends else -1


def _take_line(buffer: bytearray, limit: int) -> bytes | None:
    """A line without its CRLF (or LF), taken from the buffer; None if not complete yet."""
    end = buffer.find(b"\n")
    if end < 0:
        if len(buffer) > limit:
            raise _bad_chunk("chunk framing line too long")
        return None
    line = bytes(buffer[:end])
    del buffer[: end + 1]
    if line.endswith(b"\r"):
        line = line[:-1]
    if b"\r" in line:
        raise BadRequest(400, "bad_request", "a bare CR in the message framing")
    return line


def _bad_chunk(message: str) -> BadRequest:
    return BadRequest(400, "bad_request", f"malformed chunked body: {message}")


def _parse_field(line: bytes) -> tuple[str, str]:
    """A header (or trailer) field's name and value, checked; OWS around the value dropped."""
    if line[:1] in (b" ", b"\t"):
        raise BadRequest(400, "bad_request", "obsolete line folding in a header field")
    name, colon, value = line.partition(b":")
    if not colon or _NAME.fullmatch(name) is None:
        raise BadRequest(400, "bad_request", "malformed header field name")
    value = value.strip(b" \t")
    if _VALUE.fullmatch(value) is None:
        raise BadRequest(400, "bad_request", "a control character in a header field")
    return name.decode("latin-1"), value.decode("latin-1")


def _parse_head(raw: bytes) -> RequestHead:
    text = raw.decode("latin-1")
    match = _WELL_FORMED.fullmatch(text)
    if match is not None and match.end(3) <= MAX_REQUEST_LINE:
        method, target, version = match.group(1, 2, 3)
        fields = [
            (name, value.strip(" \t"))
            for name, value in _WELL_FORMED_FIELD.findall(text, match.start(4), match.end(4))
        ]
        _check_line(version, len(fields))
    else:
        method, target, version, fields = _read_lines(raw)
    return _interpret(method, target, version, fields)


def _read_lines(raw: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    """The request line and fields of a head, line by line: bare LFs allowed, faults named."""
    lines = raw.split(b"\n")
    # The head ends with an empty line: drop it (and the one split leaves).
    while lines and lines[-1] in (b"", b"\r"):
        lines.pop()
    stripped = []
    for line in lines:
        if line.endswith(b"\r"):
            line = line[:-1]
        if b"\r" in line:
            raise BadRequest(400, "bad_request", "a bare CR in the request head")
        stripped.append(line)
    request_line, field_lines = stripped[0], stripped[1:]
    if len(request_line) > MAX_REQUEST_LINE:
        raise BadRequest(414, "uri_too_long", "the request line is too long")
    match = _REQUEST_LINE.fullmatch(request_line)
    if match is None:
        raise BadRequest(400, "bad_request", "malformed request line")
    method, target, version = (part.decode("latin-1") for part in match.groups())
    _check_line(version, len(field_lines))  # Before the fields: what they are matters less.
    return method, target, version, [_parse_field(line) for line in field_lines]


def _check_line(version: str, fields: int) -> None:
    """Refuse a version other than HTTP/1.0 and 1.1 (505), and too many fields (431)."""
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(505, "http_version_not_supported", f"{version} is not supported")
    if fields > MAX_FIELDS:
        raise BadRequest(431, "request_header_too_large", f"more than {MAX_FIELDS} header fields")


def _interpret(
    method: str, target: str, version: str, fields: list[tuple[str, str]]
) -> RequestHead:
    """The head that well-formed lines make, refused where framing or Host is ambiguous."""
    by_name: dict[str, str] = {}
    repeated: Collection[str] = ()  # A set only when some name repeats (rarely).
    for name, value in fields:
        lower = name.lower()
        if lower in by_name:
            by_name[lower] += "," + value
            repeated = {*repeated, lower}
        else:
            by_name[lower] = value
    expect = by_name.get("expect")
    if expect is not None and "expect" in repeated:
        expect = [value for name, value in fields if name.lower() == "expect"][-1]  # The last.
    host = by_name.get("host")
    if "host" in repeated or (host is None and version == "HTTP/1.1"):
        raise BadRequest(400, "bad_request", "an HTTP/1.1 request needs exactly one Host")
    if host is not None and not _valid_host(host):
        raise BadRequest(400, "bad_request", "the Host header is not a valid host")
    length: int | None = None
    chunked = False
    coding = by_name.get("transfer-encoding")
    declared = by_name.get("content-length")
    if coding is not None:
        if version == "HTTP/1.0":
            raise BadRequest(400, "bad_request", "Transfer-Encoding in an HTTP/1.0 request")
        if declared is not None:
            raise BadRequest(
                400, "bad_request", "both Content-Length and Transfer-Encoding are present"
            )
        if "transfer-encoding" in repeated or coding.strip().lower() != "chunked":
            raise BadRequest(
                501, "not_implemented", "only the chunked transfer coding is supported"
            )
        chunked = True
    elif declared is not None:
        if "content-length" in repeated:
            raise BadRequest(400, "bad_request", "more than one Content-Length")
        if not declared.isdigit() or len(declared) > 18 or not declared.isascii():
            raise BadRequest(400, "bad_request", "Content-Length is not a number")
        length = int(declared)
    options = by_name.get("connection")
    connection = (
        [token.strip().lower() for token in options.split(",")] if options is not None else ()
    )
    if version == "HTTP/1.1":
        keep_alive = "close" not in connection
    else:
        keep_alive = "keep-alive" in connection and "close" not in connection
    return RequestHead(
        method,
        target,
        version,
        fields,
        length,
        chunked,
        keep_alive,
        expect is not None and expect.strip().lower() == "100-continue" and version == "HTTP/1.1",
        "upgrade" in by_name and "upgrade" in connection,
        by_name,
    )


# Cached: clients name the same few hosts, checked once each.
@functools.lru_cache(maxsize=256)
def _valid_host(host: str) -> bool:
    return _HOST.fullmatch(host) is not None


_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """The ``Date`` header's value for now (RFC 9110 IMF-fixdate), formatted once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]
