"""Header injection and request smuggling: refused, and never a second response."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator

import pytest

from ..helpers import Deployment, needs_nginx

pytestmark = needs_nginx

# Each request hides a second one ("GET /_/health") that must never be answered.
SMUGGLED = b"GET /_/health HTTP/1.1\r\nHost: x\r\n\r\n"
CORPUS: dict[str, bytes] = {
    "content-length and chunked (CL.TE)": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "two different content-lengths": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 37\r\n\r\n" + SMUGGLED
    ),
    "space before the colon": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n"
        b"Content-Length: 0\r\n\r\n" + SMUGGLED
    ),
    "obsolete transfer coding list": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
        b"0\r\n\r\n" + SMUGGLED
    ),
    "bad chunk size": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"zz\r\nhello\r\n0\r\n\r\n" + SMUGGLED
    ),
    "bare CR inside a header": b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\rInjected: 2\r\n\r\n"
    + SMUGGLED,
    "NUL in the request line": b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n" + SMUGGLED,
    "no Host on HTTP/1.1": b"GET /a HTTP/1.1\r\n\r\n" + SMUGGLED,
    "two Hosts": b"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n" + SMUGGLED,
    # A coding that a Unicode strip() would read as chunked: unknown to RFC 9110.
    "chunked then NBSP": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\xa0\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "NEL then chunked": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \x85chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "NBSP then chunked": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \xa0chunked\r\n\r\n0\r\n\r\n" + SMUGGLED
    ),
    "bare LF after a chunk size": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\nabc\r\n0\r\n\r\n" + SMUGGLED
    ),
    "LF inside a quoted chunk extension": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'3;ext="a\nb"\r\nabc\r\n0\r\n\r\n' + SMUGGLED
    ),
    "obsolete line folding": (
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nX-A: 1\r\n"
        b" Content-Length: 37\r\n\r\n" + SMUGGLED
    ),
    "bare LF line ends": b"GET /a HTTP/1.1\nHost: x\n\n" + SMUGGLED,
}

# nginx reads a bare LF as a line end, as RFC 9112 lets a recipient, and
# frames the request again for the worker: behind it the two readings cannot
# differ.  The worker itself, which may sit behind another proxy, refuses them.
LENIENT_IN_NGINX = {
    "bare LF after a chunk size",
    "LF inside a quoted chunk extension",
    "bare LF line ends",
}

STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) ")


def replay(port: int, raw: bytes) -> list[int]:
    """Send ``raw`` on one connection; every status line answered, until the server closes."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as sock:
        sock.sendall(raw)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
    return [int(code) for code in STATUS.findall(received)]


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployment]:
    """One worker behind nginx, shared by the whole corpus."""
    deployment = Deployment(workers=1)
    try:
        yield deployment.start()
    finally:
        deployment.stop()


@pytest.mark.parametrize("name", list(CORPUS))
def test_corpus_gets_one_refusal_directly_and_through_nginx(
    deployed: Deployment, name: str
) -> None:
    """Each malformed request is refused, alone: the request it hides is never answered."""
    ports = (
        [deployed.base_port] if name in LENIENT_IN_NGINX else [deployed.port, deployed.base_port]
    )
    for port in ports:
        statuses = replay(port, CORPUS[name])
        assert statuses, f"{name}: no answer on port {port}"
        # 4xx, or nginx's 501 for a transfer coding it does not implement.
        assert 400 <= statuses[0] < 500 or statuses[0] == 501, f"{name} on {port}: {statuses}"
        assert len(statuses) == 1, f"{name} on port {port}: a second response {statuses}"
