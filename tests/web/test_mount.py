"""Library use: channels mounted under a prefix inside a host Tornado app, with hooks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado.httpclient import HTTPClientError, HTTPResponse
from tornado.httputil import HTTPServerRequest
from tornado.testing import gen_test
from tornado.web import Application, RequestHandler

from tornado_channels import (
    Channel,
    ChannelHooks,
    Node,
    Reject,
    Target,
    channel_routes,
    http_server_options,
)
from tornado_channels.core.frames import CLOSE_POLICY_VIOLATION
from tornado_channels.core.http1 import MAX_HEAD
from tornado_channels.server.settings import ServerSettings
from tornado_channels.web.config import MiB

from ..helpers import WAIT, NodeAppTestCase, closed, receive


class HostHome(RequestHandler):
    """The host application's own page."""

    def get(self) -> None:
        self.write("host home")


class ModeratedHooks(ChannelHooks):
    """A host's rules: private/ needs a ticket, publishing needs a token, chat is moderated."""

    def authorize_subscribe(self, request: HTTPServerRequest, channel: Channel) -> bool:
        if channel.name.startswith("private/"):
            return request.query_arguments.get("ticket") == [b"ok"]
        return True

    async def authorize_publish(self, request: HTTPServerRequest, target: Target) -> bool:
        await asyncio.sleep(0)  # Hooks may be coroutines.
        return request.headers.get("X-Token") == "secret"

    async def on_client_message(
        self, request: HTTPServerRequest, channel: Channel, payload: bytes
    ) -> bytes | None:
        if payload == b"drop":
            return None
        if payload == b"bad":
            raise Reject("no bad words")
        return payload.upper()


class MountedTest(NodeAppTestCase):
    mount_prefix = "/live/"

    def make_app(self, node: Node) -> Application:
        return Application(
            [(r"/", HostHome), *channel_routes(node, prefix="/live/", hooks=ModeratedHooks())]
        )

    async def post_as(self, path: str, body: bytes, token: str = "secret") -> HTTPResponse:
        return await self.post(path, body, headers={"X-Token": token})

    @gen_test
    async def test_host_routes_keep_working(self) -> None:
        """The host's own route answers as before, beside the mounted channels."""
        response = await self.http_client.fetch(self.get_url("/"))
        self.assertEqual(response.body, b"host home")

    @gen_test
    async def test_channels_live_under_the_prefix(self) -> None:
        """/live/users/1 is channel users/1: a POST there reaches its subscriber."""
        ws = await self.ws("/live/users/1")
        response = await self.post_as("/live/users/1", b"hi")
        self.assertEqual(response.code, 202)
        self.assertEqual(json.loads(response.body)["channel"], "users/1")
        self.assertEqual(await receive(ws), "hi")

    @gen_test
    async def test_subtree_publish_under_the_prefix(self) -> None:
        """POST /live/ publishes to every channel of the mount."""
        ws = await self.ws("/live/a/b")
        await self.post_as("/live/", b"all")
        self.assertEqual(await receive(ws), "all")

    @gen_test
    async def test_paths_outside_the_prefix_are_the_hosts(self) -> None:
        """/users/1 is not a channel in the host app: the host's 404."""
        response = await self.post_as("/users/1", b"x")
        self.assertEqual(response.code, 404)

    @gen_test
    async def test_endpoints_live_under_the_prefix(self) -> None:
        """Health, page and assets are served below the prefix, and the page points there."""
        health = await self.http_client.fetch(self.get_url("/live/_/health"))
        self.assertEqual(json.loads(health.body)["status"], "ok")
        page = (await self.http_client.fetch(self.get_url("/live/users/1"))).body.decode()
        self.assertIn('src="/live/_/static/channel.js"', page)
        script = await self.http_client.fetch(self.get_url("/live/_/static/channel.js"))
        self.assertEqual(script.code, 200)

    @gen_test
    async def test_subscribe_hook_refuses_with_403(self) -> None:
        """A subscription the hook refuses is a 403 with JSON before any upgrade."""
        with self.assertRaises(HTTPClientError) as caught:
            await self.ws("/live/private/1")
        self.assertEqual(caught.exception.code, 403)
        assert caught.exception.response is not None
        self.assertEqual(json.loads(caught.exception.response.body)["error"], "forbidden")
        allowed = await self.ws("/live/private/1?ticket=ok")
        await self.post_as("/live/private/1", b"secret stuff")
        self.assertEqual(await receive(allowed), "secret stuff")

    @gen_test
    async def test_publish_hook_refuses_with_403(self) -> None:
        """A POST the hook refuses is a 403 with JSON and is not published."""
        ws = await self.ws("/live/news")
        response = await self.post_as("/live/news", b"spam", token="wrong")
        self.assertEqual(response.code, 403)
        self.assertEqual(json.loads(response.body)["error"], "forbidden")
        await self.quiet(ws)

    @gen_test
    async def test_message_hook_transforms(self) -> None:
        """The message hook's return value is what gets published."""
        sender, peer = await self.ws("/live/room"), await self.ws("/live/room")
        await sender.write_message("hello")
        self.assertEqual(await receive(peer), "HELLO")
        self.assertEqual(await receive(sender), "HELLO")

    @gen_test
    async def test_message_hook_drops(self) -> None:
        """A message the hook maps to None is not published, and the sender stays connected."""
        sender, peer = await self.ws("/live/room"), await self.ws("/live/room")
        await sender.write_message("drop")
        await self.quiet(peer)
        await sender.write_message("after")
        self.assertEqual(await receive(peer), "AFTER")

    @gen_test
    async def test_message_hook_rejects_with_1008(self) -> None:
        """A message the hook rejects closes its sender with 1008 and the reason; others stay."""
        sender, peer = await self.ws("/live/room"), await self.ws("/live/room")
        await sender.write_message("bad")
        self.assertEqual(await closed(sender), (CLOSE_POLICY_VIOLATION, "no bad words"))
        await self.quiet(peer)
        await self.post_as("/live/room", b"still open")
        self.assertEqual(await receive(peer), "still open")


def test_the_server_options_default_to_the_standalone_servers_limits() -> None:
    """http_server_options() has the defaults of --idle-timeout, --body-timeout, the head limit."""
    options = http_server_options()
    standalone = ServerSettings()
    assert options["idle_connection_timeout"] == standalone.idle_timeout
    assert options["body_timeout"] == standalone.body_timeout
    assert options["max_header_size"] == MAX_HEAD
    # At least the 16 MiB a publish refusal reads, and more when the routes take more.
    assert options["max_body_size"] == 16 * MiB
    assert http_server_options(max_message_size=32 * MiB)["max_body_size"] == 32 * MiB
    assert http_server_options(idle_timeout=30)["idle_connection_timeout"] == 30


class MountedLimitsTest(NodeAppTestCase):
    mount_prefix = "/live/"

    """A host application listening with http_server_options(), its timeouts made short."""

    def make_app(self, node: Node) -> Application:
        return Application([(r"/", HostHome), *channel_routes(node, prefix="/live/")])

    def get_httpserver_options(self) -> dict[str, Any]:
        return http_server_options(idle_timeout=0.5, body_timeout=0.5)

    async def open(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.get_http_port())

    async def until_closed(self, reader: asyncio.StreamReader) -> bytes:
        """Everything the server sends until it closes the connection (bounded by WAIT)."""
        return await asyncio.wait_for(reader.read(), WAIT)

    @gen_test(timeout=WAIT * 2)
    async def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(self) -> None:
        """A client that connects and never sends a request is disconnected, unanswered."""
        reader, writer = await self.open()
        try:
            self.assertEqual(await self.until_closed(reader), b"")
        finally:
            writer.close()

    @gen_test(timeout=WAIT * 2)
    async def test_a_connection_idle_after_a_request_is_closed_after_the_idle_timeout(self) -> None:
        """A kept-alive connection that sends no second request is disconnected after its answer."""
        reader, writer = await self.open()
        try:
            writer.write(b"GET /live/_/health HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await self.until_closed(reader)
            self.assertTrue(answer.startswith(b"HTTP/1.1 200 "), answer[:100])
        finally:
            writer.close()

    @gen_test(timeout=WAIT * 2)
    async def test_a_body_that_stops_arriving_is_closed_after_the_body_timeout(self) -> None:
        """A POST whose body stalls halfway is disconnected, and nothing is published."""
        listener = await self.ws("/live/a")
        reader, writer = await self.open()
        try:
            writer.write(b"POST /live/a HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
            self.assertEqual(await self.until_closed(reader), b"")
        finally:
            writer.close()
        await self.quiet(listener)

    @gen_test(timeout=WAIT * 2)
    async def test_a_body_over_the_message_limit_still_gets_the_routes_json_413(self) -> None:
        """A 9 MiB POST (over the routes' limits, under the server's) is the routes' JSON 413."""
        response = await self.post("/live/a", b"x" * (9 * MiB))
        self.assertEqual(response.code, 413)
        self.assertEqual(json.loads(response.body)["error"], "message_too_large")
