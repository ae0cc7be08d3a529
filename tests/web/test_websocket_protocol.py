"""Close frames from a client: valid codes are echoed, malformed ones answered with 1002 or 1007."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import pytest
from tornado.testing import gen_test

from tornado_channels.core.inbound import close_frame_error, is_valid_close_code

from ..helpers import WAIT, NodeAppTestCase

# Autobahn 7.9.1-7.9.9's invalid codes, then the rest of the reserved and unassigned ranges.
INVALID_CODES = (0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999, 1015, 5000, 65535)
# Autobahn 7.7.1-7.7.13's valid codes, and the registered ones this server sends itself.
VALID_CODES = (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1013, 3000, 3999, 4000, 4999)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


@pytest.mark.parametrize("code", INVALID_CODES)
def test_invalid_codes_are_protocol_errors(code: int) -> None:
    """A close frame carrying a code no peer may send is answered with 1002."""
    assert not is_valid_close_code(code)
    assert close_frame_error(close_payload(code)) == (1002, f"invalid close code {code}")


@pytest.mark.parametrize("code", VALID_CODES)
def test_valid_codes_pass(code: int) -> None:
    """A close frame carrying a valid code (and a UTF-8 reason) is left to Tornado."""
    assert is_valid_close_code(code)
    assert close_frame_error(close_payload(code, "bye ✓".encode())) is None


def test_malformed_payloads() -> None:
    """No payload is fine; one byte is a protocol error; a reason that is not UTF-8 is 1007."""
    assert close_frame_error(b"") is None
    assert close_frame_error(b"\x03") == (1002, "close frame payload of one byte")
    assert close_frame_error(close_payload(1000, b"\xce\xba\xed\xa0\x80")) == (
        1007,
        "close reason is not UTF-8",
    )


class RawClient:
    """A WebSocket client on a bare socket, so it can send what a library would refuse to."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, path: str) -> RawClient:
        """Open a connection to ``path`` and complete the opening handshake."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), WAIT)
        client = cls(reader, writer)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        if not head.startswith(b"HTTP/1.1 101 "):
            await client.aclose()
            raise AssertionError(f"handshake refused: {head!r}")
        return client

    def send(self, opcode: int, payload: bytes) -> None:
        """Write one final frame, masked as every client frame must be (payload < 126 bytes)."""
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self.writer.write(struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + masked)

    async def receive(self) -> tuple[int, bytes]:
        """The next frame from the server: its opcode and payload."""
        first, second = await asyncio.wait_for(self.reader.readexactly(2), WAIT)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        payload = await asyncio.wait_for(self.reader.readexactly(length), WAIT)
        return first & 0x0F, payload

    async def closed_by_server(self) -> bool:
        """Whether the server closes the TCP connection (within WAIT)."""
        return await asyncio.wait_for(self.reader.read(1), WAIT) == b""

    async def aclose(self) -> None:
        self.writer.close()
        await asyncio.wait_for(self.writer.wait_closed(), WAIT)


class CloseFrameTest(NodeAppTestCase):
    """Close frames sent to a real server over a real socket."""

    async def close_with(self, payload: bytes) -> bytes:
        """Send a close frame with ``payload``; return the payload of the server's close frame."""
        client = await RawClient.connect(self.get_http_port(), "/tests/close")
        try:
            client.send(0x8, payload)
            opcode, reply = await client.receive()
            assert opcode == 0x8, f"expected a close frame, got opcode {opcode}"
            assert await client.closed_by_server(), "the server kept the connection open"
        finally:
            await client.aclose()
        return reply

    @gen_test(timeout=60)
    async def test_invalid_codes_are_answered_with_1002(self) -> None:
        """Every invalid close code gets 1002 back, not an echo, and the connection ends."""
        for code in INVALID_CODES:
            reply = await self.close_with(close_payload(code))
            assert reply[:2] == close_payload(1002), (code, reply)

    @gen_test(timeout=60)
    async def test_valid_codes_are_echoed(self) -> None:
        """A valid close code comes back as sent, as Tornado has always done."""
        for code in (1000, 1001, 1013, 3000, 4999):
            reply = await self.close_with(close_payload(code, b"bye"))
            assert reply == close_payload(code), (code, reply)

    @gen_test(timeout=30)
    async def test_malformed_close_frames(self) -> None:
        """One byte of payload is 1002, a reason that is not UTF-8 is 1007, none is echoed empty."""
        assert (await self.close_with(b"\x03"))[:2] == close_payload(1002)
        invalid_reason = close_payload(1000, b"\xce\xba\xed\xa0\x80")
        assert (await self.close_with(invalid_reason))[:2] == close_payload(1007)
        assert await self.close_with(b"") == b""

    @gen_test(timeout=30)
    async def test_messages_still_echo_then_invalid_close_unsubscribes(self) -> None:
        """A client's message still comes back to it; after an invalid close it is unsubscribed."""
        client = await RawClient.connect(self.get_http_port(), "/tests/echo")
        try:
            client.send(0x1, b"hello")
            assert await client.receive() == (0x1, b"hello")
            client.send(0x8, close_payload(999))
            opcode, reply = await client.receive()
            assert (opcode, reply[:2]) == (0x8, close_payload(1002))
            assert await client.closed_by_server()
        finally:
            await client.aclose()
        deadline = asyncio.get_running_loop().time() + WAIT
        while len(self.node.hub):
            assert asyncio.get_running_loop().time() < deadline, "still subscribed"
            await asyncio.sleep(0.01)
