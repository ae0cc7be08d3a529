"""Each private Tornado attribute web/_tornado.py relies on still exists and means the same."""

from __future__ import annotations

import socket

import tornado
import tornado.web
from tornado.iostream import IOStream
from tornado.testing import AsyncTestCase, gen_test

from tornado_channels.web import _tornado


def test_the_supported_range_includes_the_installed_tornado() -> None:
    """Importing the module checked the version; the range it names is [6.6, 7)."""
    low, high = _tornado.SUPPORTED
    assert low <= tornado.version_info[:2] < high


class StreamTest(AsyncTestCase):
    def pair(self) -> tuple[IOStream, socket.socket]:
        left, right = socket.socketpair()
        return IOStream(left), right

    @gen_test
    async def test_read_ahead_returns_what_the_stream_read_but_nobody_took(self) -> None:
        """IOStream._read_buffer/_read_buffer_size: bytes read past a read_until are returned."""
        stream, peer = self.pair()
        try:
            peer.sendall(b"HEAD\r\n\r\nrest of it")
            assert await stream.read_until(b"\r\n\r\n") == b"HEAD\r\n\r\n"
            # The stream has read on; what it holds is what a taken-over socket needs.
            for _ in range(100):
                if _tornado.read_ahead(stream) == b"rest of it":
                    break
                await stream.read_bytes(0)
            assert _tornado.read_ahead(stream) == b"rest of it"
        finally:
            stream.close()
            peer.close()

    @gen_test
    async def test_queued_bytes_counts_what_the_kernel_has_not_taken(self) -> None:
        """IOStream._write_buffer: a write past the socket's buffer is counted until sent."""
        stream, peer = self.pair()
        try:
            peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stream.write(b"x" * (8 << 20))
            assert _tornado.queued_bytes(stream) > 0
            assert _tornado.queued_bytes(None) == 0
        finally:
            stream.close()
            peer.close()


def test_a_handler_can_be_released_of_its_cycles() -> None:
    """RequestHandler._break_cycles exists and can be called on a finished handler."""
    assert callable(tornado.web.RequestHandler._break_cycles)
