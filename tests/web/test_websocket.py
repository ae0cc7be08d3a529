"""The WebSocket handshake and the socket handed to the loop's transport after it."""

from __future__ import annotations

import asyncio
import json
import os
import struct

from tornado.httpclient import HTTPRequest
from tornado.httputil import HTTPServerRequest
from tornado.testing import AsyncHTTPSTestCase, gen_test
from tornado.web import Application
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tornado_channels import Channel, ChannelHooks, MemoryBroker, Node, make_app

from ..helpers import WAIT, NodeAppTestCase, raw_websocket, receive


def masked_text(payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return struct.pack("!BB", 0x81, 0x80 | len(payload)) + mask + body


class HandshakeTest(NodeAppTestCase):
    def upgrade(self, **headers: str) -> HTTPRequest:
        base = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version": "13",
        }
        return HTTPRequest(self.get_url("/room"), headers={**base, **headers})

    @gen_test
    async def test_an_unsupported_version_is_426_naming_the_supported_one(self) -> None:
        """A handshake for another WebSocket version gets 426 and Sec-WebSocket-Version: 13."""
        response = await self.http_client.fetch(
            self.upgrade(**{"Sec-WebSocket-Version": "8"}), raise_error=False
        )
        self.assertEqual(response.code, 426)
        self.assertEqual(response.headers["Sec-WebSocket-Version"], "13")
        self.assertEqual(json.loads(response.body)["error"], "unsupported_version")

    @gen_test
    async def test_a_handshake_without_a_key_is_400(self) -> None:
        """A handshake without Sec-WebSocket-Key is refused with 400 invalid_handshake."""
        response = await self.http_client.fetch(
            self.upgrade(**{"Sec-WebSocket-Key": ""}), raise_error=False
        )
        self.assertEqual(response.code, 400)
        self.assertEqual(json.loads(response.body)["error"], "invalid_handshake")

    @gen_test
    async def test_a_frame_sent_with_the_handshake_is_not_lost(self) -> None:
        """A message in the same packet as the handshake request is read after the upgrade."""
        listener = await self.ws("/room")
        port = self.get_http_port()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                f"GET /room HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n".encode()
                + masked_text(b"early bird")
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
            self.assertIn(b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", head)
            self.assertEqual(await receive(listener), "early bird")
            echo = await asyncio.wait_for(reader.readexactly(12), WAIT)
            self.assertEqual(echo, b"\x81\x0aearly bird")
        finally:
            writer.close()


class FailingTest(NodeAppTestCase):
    @gen_test
    async def test_a_protocol_error_with_bytes_behind_it_ends_in_a_fin_not_a_reset(self) -> None:
        """A frame with a reserved opcode, followed by bytes, gets its 1002 close and a FIN."""
        for _ in range(20):
            reader, writer = await raw_websocket(self.get_http_port(), "/room")
            try:
                # The junk is still arriving when the server fails the connection:
                # closed with it unread, the socket would reset and lose the close frame.
                writer.write(struct.pack("!BB", 0x83, 0x80) + os.urandom(4) + b"x" * (256 << 10))
                await asyncio.sleep(0.05)
                received = await asyncio.wait_for(reader.read(), WAIT)
                self.assertEqual(received[:4], b"\x88" + bytes([len(received) - 2]) + b"\x03\xea")
                self.assertTrue(reader.at_eof())
            finally:
                writer.close()


class TLSTest(AsyncHTTPSTestCase):
    """Over TLS the session stays in Tornado's SSLIOStream (StreamTransport), not the loop's."""

    def get_app(self) -> Application:
        self.node = Node(MemoryBroker())
        self.io_loop.run_sync(self.node.start)
        return make_app(self.node)

    def tearDown(self) -> None:
        self.io_loop.run_sync(self.node.stop)
        super().tearDown()

    @gen_test
    async def test_a_tls_websocket_subscribes_chats_and_closes(self) -> None:
        """Over wss:// a client gets published messages, its own echo, and a clean close."""
        request = HTTPRequest(f"wss://127.0.0.1:{self.get_http_port()}/secure", validate_cert=False)
        ws = await websocket_connect(request)
        response = await self.http_client.fetch(
            self.get_url("/secure"), method="POST", body=b"over tls"
        )
        self.assertEqual(response.code, 202)
        self.assertEqual(await receive(ws), "over tls")
        await ws.write_message("echo")
        self.assertEqual(await receive(ws), "echo")
        ws.close(1000)
        self.assertIsNone(await asyncio.wait_for(ws.read_message(), WAIT))
        self.assertEqual(ws.close_code, 1000)


class SlowHooks(ChannelHooks):
    async def on_client_message(
        self, request: HTTPServerRequest, channel: Channel, payload: bytes
    ) -> bytes:
        await asyncio.sleep(0.001)  # messages queue up behind this one
        return payload


class BurstTest(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, hooks=SlowHooks(), client_rate=0)

    @gen_test(timeout=30)
    async def test_a_burst_from_one_client_is_published_in_order(self) -> None:
        """200 messages sent at once, past the queue that pauses reading, all arrive in order."""
        listener, sender = await self.ws("/burst"), await self.ws("/burst")
        for i in range(200):
            await sender.write_message(f"m{i}")
        expected = [f"m{i}" for i in range(200)]
        self.assertEqual([await receive(listener) for _ in range(200)], expected)
        self.assertEqual([await receive(sender) for _ in range(200)], expected)


class CompressionTest(NodeAppTestCase):
    """permessage-deflate on a mounted application (Tornado's own HTTPServer)."""

    BIG = json.dumps([{"id": i, "name": f"user{i}"} for i in range(100)])

    async def deflating_client(self, path: str) -> WebSocketClientConnection:
        conn = await websocket_connect(
            f"ws://127.0.0.1:{self.get_http_port()}{path}", compression_options={}
        )
        self.clients.append(conn)
        return conn

    @gen_test(timeout=WAIT * 2)
    async def test_tornado_client_gets_exact_messages_and_its_own_back(self) -> None:
        """Tornado's deflating client negotiates, gets text exactly, and its messages echo."""
        conn = await self.deflating_client("/deflate")
        assert conn.headers["Sec-WebSocket-Extensions"].startswith(
            "permessage-deflate; server_no_context_takeover"
        )
        await self.publish("/deflate", self.BIG)
        assert await receive(conn) == self.BIG
        await self.publish("/deflate", "small")
        assert await receive(conn) == "small"
        await conn.write_message(self.BIG)
        assert await receive(conn) == self.BIG


class CompressionOffTest(NodeAppTestCase):
    """make_app(..., compression="off") never agrees to permessage-deflate."""

    def make_app(self, node: Node) -> Application:
        return make_app(node, compression="off")

    @gen_test(timeout=WAIT * 2)
    async def test_an_offer_is_ignored(self) -> None:
        """The 101 carries no extension, and messages arrive as before."""
        conn = await websocket_connect(
            f"ws://127.0.0.1:{self.get_http_port()}/off", compression_options={}
        )
        self.clients.append(conn)
        assert "Sec-WebSocket-Extensions" not in conn.headers
        await self.publish("/off", CompressionTest.BIG)
        assert await receive(conn) == CompressionTest.BIG
