"""HTTP/1.1 requests read from a byte stream by llhttp, strictly (pure, no I/O).

:class:`RequestReader` takes bytes as they arrive and hands out, one at a
time, what they complete: a request's head (:class:`RequestHead`), pieces of
its body, then :data:`END`.  The framing is read by ``httptools`` (llhttp,
Node's parser, fuzzed for years): a request line, header fields and chunked
bodies exactly as RFC 9112 frames them, with every leniency off, so where a
request ends is never open to two readings (request smuggling).  What it
adds, and why:

- it parses only what it is asked for, a head's worth of bytes at a time, so
  a pipelined request waits *unparsed* in the buffer until the one before it
  is answered: a client that pipelines thousands of requests costs its bytes,
  never thousands of parsed heads;
- limits llhttp leaves to its user: the request line (414), the head and
  the number of fields (431);
- what the server itself refuses before any handler runs: a version other
  than HTTP/1.0 and 1.1 (505), a transfer coding other than ``chunked``
  alone (501), ``Transfer-Encoding`` in HTTP/1.0, a missing, repeated or
  malformed ``Host`` in HTTP/1.1, a body on a request that switches
  protocols (400);
- each refusal as a status and a short error code (:class:`BadRequest`),
  handed out in order after the requests before it.
"""

from __future__ import annotations

import functools
import re
import time
from collections import deque
from dataclasses import dataclass
from email.utils import formatdate

import httptools

#: Longest request head (request line and header fields), in bytes: 431 beyond.
MAX_HEAD = 65536
#: Longest request line, in bytes: 414 beyond.
MAX_REQUEST_LINE = 8192
#: Most header fields in one request: 431 beyond.
MAX_FIELDS = 100
#: Bytes handed to the parser at a time while in a body (few calls for a large
#: one), and at most while looking for a head's end (see RequestReader._parse).
BODY_SLICE = 64 << 10
HEAD_SLICE = 8 << 10

# RFC 9110 7.2's Host as Tornado reads it (uri-host, then an optional port),
# less the comma: a value Tornado's request would refuse is refused here, 400.
_HOST = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+;=\[\]:]|%[0-9A-Fa-f]{2})*")
# Optional whitespace as RFC 9110 5.6.3 defines it: str.strip() would also
# strip Unicode spaces such as U+00A0 and U+0085, which the Latin-1 reading of
# bytes 0xA0 and 0x85 produces, and make "chunked\xa0" read as "chunked".
_OWS = " \t"


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
    #: Whether it asks to switch protocols (``Upgrade`` with ``Connection:
    #: upgrade``, or CONNECT): what follows its head is not HTTP, so a request
    #: not switched ends the connection.
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


Event = RequestHead | bytes | _End | BadRequest


class RequestReader:
    """Reads requests one after another from the bytes of one connection.

    The parser's callbacks (``on_url`` and the rest, called by httptools)
    are its own methods; they queue what they complete, and :meth:`next`
    hands the queue out.
    """

    __slots__ = (
        "_body_left",
        "_body_queued",
        "_events",
        "_fields",
        "_head_fed",
        "_in_body",
        "_in_head",
        "_in_message",
        "_parser",
        "_raw",
        "_rest",
        "_slice",
        "_stopped",
        "_trailer_bytes",
        "_url",
    )

    def __init__(self) -> None:
        self._parser = httptools.HttpRequestParser(self)
        self._raw = bytearray()
        self._events: deque[Event] = deque()
        self._body_queued = 0
        # Bytes still to come of a Content-Length body (None when chunked).
        self._body_left: int | None = None
        self._url = b""
        self._fields: list[tuple[str, str]] = []
        # Where the parser is: inside a request at all, in its head, in its body.
        self._in_message = False
        self._in_head = False
        self._in_body = False
        # Bytes fed while in a head (431 beyond MAX_HEAD), and of trailers.
        self._head_fed = 0
        self._trailer_bytes = 0
        # The size of the slice being parsed (counted into a head it ends).
        self._slice = 0
        # After a request that switches protocols: the bytes that followed it.
        self._rest: bytearray | None = None
        # After a refusal: nothing more is read.
        self._stopped = False

    def feed(self, data: bytes) -> None:
        """Add bytes as they arrive."""
        if self._rest is not None:
            self._rest += data
        elif not self._stopped:
            self._raw += data

    @property
    def buffered(self) -> int:
        """Bytes received but not yet handed out."""
        rest = len(self._rest) if self._rest is not None else 0
        return len(self._raw) + self._body_queued + rest

    @property
    def between_requests(self) -> bool:
        """Whether the last request is complete and no byte of the next one has arrived."""
        return (
            not self._in_message
            and not self._events
            and not self._rest
            and not self._raw.strip(b"\r\n")
        )

    def take_rest(self) -> bytes:
        """What followed a request that switches protocols, for the protocol taking over."""
        rest = bytes(self._rest or b"") + bytes(self._raw)
        self._raw.clear()
        self._rest = bytearray()
        return rest

    def next(self) -> RequestHead | bytes | _End | None:
        """The next head, piece of body, or END; None until more bytes arrive.

        Raises :class:`BadRequest` for a request that cannot be read; nothing
        is read after it.
        """
        events = self._events
        while not events:
            if not self._parse():
                return None
        event = events.popleft()
        if type(event) is bytes:
            self._body_queued -= len(event)
        elif isinstance(event, BadRequest):
            raise event
        return event

    def _parse(self) -> bool:
        """Parse one slice of the buffer; False if there is nothing (more) to parse."""
        raw = self._raw
        if not raw or self._stopped or self._rest is not None:
            return False
        if self._in_body:
            # No further than the body's end, where it is known: what follows
            # it is the next request, parsed only when asked for.
            if self._body_left is not None:
                size = min(self._body_left, BODY_SLICE)
            else:
                end = raw.find(b"0\r\n\r\n", 0, BODY_SLICE)
                size = end + 5 if end >= 0 else BODY_SLICE
        else:
            # Up to the first blank line: a head, almost always, whole and no
            # more, so pipelined requests after it stay unparsed bytes.
            end = raw.find(b"\r\n\r\n", 0, HEAD_SLICE)
            size = end + 4 if end >= 0 else HEAD_SLICE
        chunk = bytes(raw[:size])
        del raw[:size]
        self._slice = len(chunk)
        try:
            self._parser.feed_data(chunk)
        except httptools.HttpParserUpgrade as upgrade:
            self._rest = bytearray(chunk[upgrade.args[0] :]) + raw
            raw.clear()
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if not isinstance(cause, BadRequest):
                raise
            self._stop(cause)
        except httptools.HttpParserError as exc:
            self._stop(_refusal(exc))
        else:
            if self._in_head:
                self._head_fed += len(chunk)
                if self._head_fed > MAX_HEAD:
                    self._stop(_head_too_large())
        return True

    def _stop(self, refusal: BadRequest) -> None:
        self._stopped = True
        self._raw.clear()
        self._events.append(refusal)

    # The parser's callbacks

    def on_message_begin(self) -> None:
        """A request line begins."""
        self._in_message = self._in_head = True
        self._head_fed = self._trailer_bytes = 0
        self._url = b""
        self._fields = []

    def on_url(self, url: bytes) -> None:
        """A piece of the request target (more may follow)."""
        self._url += url
        if len(self._url) > MAX_REQUEST_LINE:
            raise BadRequest(414, "uri_too_long", "the request line is too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        """A header field, whole (or, after a chunked body, a trailer field: dropped)."""
        if not self._in_head:
            self._trailer_bytes += len(name) + len(value) + 4
            if self._trailer_bytes > MAX_HEAD:
                raise BadRequest(
                    431, "request_header_too_large", "the trailer fields are too large"
                )
            return
        fields = self._fields
        if len(fields) >= MAX_FIELDS:
            raise BadRequest(
                431, "request_header_too_large", f"more than {MAX_FIELDS} header fields"
            )
        fields.append((name.decode("latin-1"), value.decode("latin-1").strip(_OWS)))

    def on_headers_complete(self) -> None:
        """The head is complete: checked, and queued."""
        parser = self._parser
        self._in_head = False
        if self._head_fed + self._slice > MAX_HEAD:
            raise _head_too_large()
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise BadRequest(505, "http_version_not_supported", f"HTTP/{version} is not supported")
        head = interpret(
            parser.get_method().decode("latin-1"),
            self._url.decode("latin-1"),
            f"HTTP/{version}",
            self._fields,
            parser.should_keep_alive(),
            parser.should_upgrade(),
        )
        self._in_body = head.has_body and not head.upgrade
        self._body_left = head.length
        self._events.append(head)

    def on_body(self, body: bytes) -> None:
        """A piece of the body."""
        self._body_queued += len(body)
        if self._body_left is not None:
            self._body_left -= len(body)
        self._events.append(body)

    def on_message_complete(self) -> None:
        """The request is complete."""
        self._in_message = self._in_body = False
        self._events.append(END)


def _refusal(exc: httptools.HttpParserError) -> BadRequest:
    """What llhttp's error (named in its message) is answered with."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, httptools.HttpParserInvalidMethodError):
        return BadRequest(400, "bad_request", "malformed request line: invalid method")
    if isinstance(exc, httptools.HttpParserInvalidURLError):
        return BadRequest(400, "bad_request", f"malformed request target: {reason}")
    if "nvalid `Transfer-Encoding`" in reason:  # "Invalid ..." and "... has invalid ...".
        return BadRequest(501, "not_implemented", "only the chunked transfer coding is supported")
    return BadRequest(400, "bad_request", f"malformed request: {reason}")


def _head_too_large() -> BadRequest:
    return BadRequest(431, "request_header_too_large", f"the request head exceeds {MAX_HEAD} bytes")


def interpret(
    method: str,
    target: str,
    version: str,
    fields: list[tuple[str, str]],
    keep_alive: bool,
    upgrade: bool,
) -> RequestHead:
    """The head that parsed fields make, refused where framing or Host is ambiguous.

    llhttp has already refused a repeated or malformed ``Content-Length``
    and one beside ``Transfer-Encoding``; what it lets through and a server
    must not is refused here.
    """
    by_name: dict[str, str] = {}
    repeated: set[str] | None = None  # Made only when some name repeats (rarely).
    for name, value in fields:
        lower = name.lower()
        if lower in by_name:
            by_name[lower] += "," + value
            if repeated is None:
                repeated = set()
            repeated.add(lower)
        else:
            by_name[lower] = value
    repeated = repeated or set()
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
        if "transfer-encoding" in repeated or coding.strip(_OWS).lower() != "chunked":
            raise BadRequest(
                501, "not_implemented", "only the chunked transfer coding is supported"
            )
        chunked = True
    elif declared is not None:
        length = int(declared)  # llhttp let only digits through.
    if upgrade and (chunked or length):
        raise BadRequest(400, "bad_request", "a request that switches protocols has a body")
    expect = by_name.get("expect")
    if expect is not None and "expect" in repeated:
        expect = [value for name, value in fields if name.lower() == "expect"][-1]  # The last.
    expect_continue = False
    if expect is not None and version == "HTTP/1.1":
        expect_continue = expect.strip(_OWS).lower() == "100-continue"
    return RequestHead(
        method,
        target,
        version,
        fields,
        length,
        chunked,
        keep_alive and not upgrade,
        expect_continue,
        upgrade,
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
