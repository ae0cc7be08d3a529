"""Every use of Tornado's private API, in one place, for the Tornado versions it was checked on.

Three things Tornado offers no public way to do, all for the WebSocket and
event-stream edges when they run on Tornado's own ``HTTPServer`` (a mounted
application; the standalone server's wire needs none of them):

- the bytes a client sent right after its WebSocket handshake, which the
  IOStream has already read (``IOStream._read_buffer``, ``_read_buffer_size``);
- how much an IOStream still has to write (``IOStream._write_buffer``), for
  the slow-consumer bound of an event stream;
- breaking a handler's reference cycles once its socket is taken over
  (``RequestHandler._break_cycles``), so it is freed at once;
- the access log's summary of a request (``RequestHandler._request_summary``,
  which ``Application.log_request`` calls, in a host application too), so a
  token in a URL never reaches a log: the channel handlers override it, and
  :func:`redact` hides the token there.

Importing this module checks the Tornado version; ``tests/web/test_tornado_private.py``
checks each attribute, so an upgrade that changes one fails loudly there.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

import tornado
import tornado.web
from tornado.iostream import IOStream

# A query parameter: a name after "?" or "&", then "=" and its value.  The value
# runs to the next "&" or the end of the URI (whitespace, in a log line): not to
# "#" or ";", which Tornado's query parsing keeps inside a value, so a token
# containing one would otherwise be half shown.
_PARAMETER = re.compile(r"(?<=[?&])([^=&\s]*)=[^&\s]*")
#: How many rounds of percent-decoding a parameter's name gets before it is compared.
_DECODINGS = 3

#: The Tornado versions these private attributes were checked on: [6.6, 7).
SUPPORTED = ((6, 6), (7, 0))

if not SUPPORTED[0] <= tornado.version_info[:2] < SUPPORTED[1]:
    raise ImportError(
        f"tornado_channels supports Tornado >= 6.6, < 7; found {tornado.version} "
        "(it relies on private details of IOStream and RequestHandler: see web/_tornado.py)"
    )


def read_ahead(stream: IOStream) -> bytes:
    """What ``stream`` has read from its socket that nobody has consumed yet."""
    return bytes(stream._read_buffer[: stream._read_buffer_size])


def queued_bytes(stream: IOStream | None) -> int:
    """Bytes written to ``stream`` that the kernel has not yet taken."""
    buffer = getattr(stream, "_write_buffer", None)
    return len(buffer) if buffer is not None else 0


def request_summary(handler: tornado.web.RequestHandler) -> str:
    """What Tornado's access log says of ``handler``'s request, with ``token=`` values hidden."""
    return redact(tornado.web.RequestHandler._request_summary(handler))


def redact(text: str) -> str:
    """``text`` (a URI, a log line) with the value of every parameter named ``token`` hidden.

    A name counts as ``token`` however it is spelled: percent-encoded
    (``%74oken``, ``to%6Ben``, read as Tornado reads it, so what is used as the
    token is what is hidden), encoded twice over (``%2574oken``), or in any case
    (``TOKEN``).  The server reads only ``token`` itself; hiding the rest costs
    nothing and covers a host application or proxy that reads names otherwise.
    """
    if "=" not in text:
        return text  # Most URIs: no query at all.
    return _PARAMETER.sub(_hide_token, text)


def _hide_token(parameter: re.Match[str]) -> str:
    name = parameter.group(1)
    return f"{name}=[redacted]" if names_token(name) else parameter.group(0)


def names_token(name: str) -> bool:
    """Whether a query parameter's raw ``name`` reads as ``token`` (see :func:`redact`)."""
    for _ in range(_DECODINGS):
        if name.lower() == "token":
            return True
        # As parse_qs decodes names: "+" is a space, each escape one Latin-1 byte.
        decoded = unquote_plus(name, encoding="latin-1")
        if decoded == name:
            return False
        name = decoded
    return name.lower() == "token"


def release(handler: tornado.web.RequestHandler) -> None:
    """Let a handler whose connection was taken over be freed at once (no cycles left)."""
    handler._break_cycles()
