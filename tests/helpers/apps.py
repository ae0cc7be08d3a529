"""The base test case for apps that serve a node: handler, mount and metrics tests."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado.httpclient import HTTPResponse
from tornado.testing import AsyncHTTPTestCase
from tornado.web import Application
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tornado_channels import MemoryBroker, Node, make_app
from tornado_channels.core.channels import Target, parse_target, path_below

from .support import WAIT

#: What :meth:`NodeAppTestCase.quiet` publishes: nothing a test sends looks like it.
MARKER = "\u2400 nothing before this"


class NodeAppTestCase(AsyncHTTPTestCase):
    """An app serving a started memory-broker node.

    WebSocket clients opened with :meth:`ws` are closed inside the IOLoop at
    teardown (the suite runs with warnings as errors, and an unclosed client
    is a ResourceWarning).  Override :meth:`make_node` or :meth:`make_app`.
    """

    #: Where the channels are mounted (a subclass that mounts them elsewhere says so).
    mount_prefix = "/"

    def make_node(self) -> Node:
        return Node(MemoryBroker())

    def make_app(self, node: Node) -> Application:
        return make_app(node)

    def get_app(self) -> Application:
        self.node = self.make_node()
        self.io_loop.run_sync(self.node.start)
        return self.make_app(self.node)

    def setUp(self) -> None:
        self.clients: list[WebSocketClientConnection] = []
        # Each client's channel, for quiet().
        self.targets: dict[WebSocketClientConnection, Target] = {}
        super().setUp()

    def tearDown(self) -> None:
        self.io_loop.run_sync(self.close_clients)
        self.io_loop.run_sync(self.node.stop)
        super().tearDown()

    async def close_clients(self) -> None:
        open_ones = [conn for conn in self.clients if conn.close_code is None]
        for conn in self.clients:
            conn.close()
        for conn in open_ones:
            # Read until the server's close frame: the connection is then done.
            while await asyncio.wait_for(conn.read_message(), 5) is not None:
                pass

    async def post(self, path: str, body: bytes | str = b"x", **kwargs: Any) -> HTTPResponse:
        """POST ``body`` to ``path`` on the app; any status is returned, not raised."""
        return await self.http_client.fetch(
            self.get_url(path), method="POST", body=body, raise_error=False, **kwargs
        )

    async def publish(self, path: str, body: bytes | str) -> str:
        """POST a message that must be accepted; return its position."""
        response = await self.post(path, body)
        assert response.code == 202, response.body
        return str(json.loads(response.body)["position"])

    async def ws(self, path: str) -> WebSocketClientConnection:
        """Open a WebSocket to ``path`` on the app; it is closed at teardown."""
        conn = await websocket_connect(f"ws://127.0.0.1:{self.get_http_port()}{path}")
        self.clients.append(conn)
        below = path_below(self.mount_prefix, path.partition("?")[0])
        if below is not None:
            self.targets[conn] = parse_target(below)
        return conn

    async def quiet(self, ws: WebSocketClientConnection) -> None:
        """Assert that nothing has reached ``ws``: a marker published now is the next it gets.

        The node delivers a channel's messages in the order it published them,
        so anything published to ``ws``'s channel before the marker, or any
        event sent before it, would arrive first: no waiting for a silence.
        """
        await self.node.publish(self.targets[ws], MARKER.encode())
        message = await asyncio.wait_for(ws.read_message(), WAIT)
        assert message is not None, "the connection closed instead"
        text = message.decode() if isinstance(message, bytes) else message
        if text != MARKER:  # A stream with positions wraps it: {"position", "data"}.
            try:
                data = json.loads(text).get("data")
            except (ValueError, AttributeError):
                data = None
            assert data == MARKER, f"expected nothing before the marker, got {text!r}"
