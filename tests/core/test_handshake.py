"""The WebSocket opening handshake, checked and answered (pure, RFC 6455 section 4)."""

from __future__ import annotations

import pytest
from tornado.httputil import HTTPHeaders

from tornado_channels.core.handshake import (
    HandshakeError,
    accept_key,
    client_key,
    switching_protocols,
)

GOOD = {
    "Host": "example",
    "Upgrade": "websocket",
    "Connection": "keep-alive, Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


def test_the_rfc_example_key_gets_the_rfc_example_accept() -> None:
    """RFC 6455 section 1.3: this key is answered with s3pPLMBiTxaQ9kYGzzhZRbK+xOo=."""
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_a_well_formed_handshake_gives_its_key_and_a_101() -> None:
    """Header names in any case; the answer carries the accept key."""
    headers = HTTPHeaders({name.lower(): value for name, value in GOOD.items()})
    key = client_key(headers)
    assert key == GOOD["Sec-WebSocket-Key"]
    answer = switching_protocols(key)
    assert answer.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n" in answer


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"Upgrade": "h2c"}, 400),
        ({"Connection": "keep-alive"}, 400),
        ({"Sec-WebSocket-Version": "8"}, 426),
        ({"Sec-WebSocket-Key": ""}, 400),
        ({"Host": ""}, 400),
    ],
)
def test_a_malformed_handshake_is_refused_with_its_status(
    change: dict[str, str], status: int
) -> None:
    """Each missing or wrong header has its status; 426 says which version to use."""
    headers = HTTPHeaders({**GOOD, **change})
    with pytest.raises(HandshakeError) as caught:
        client_key(headers)
    assert caught.value.status == status
    if status == 426:
        assert caught.value.headers == {"Sec-WebSocket-Version": "13"}
