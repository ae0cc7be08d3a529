"""Library use: channels mounted under a prefix inside a host Tornado app, with hooks."""

from __future__ import annotations

import asyncio
import json

from tornado.httpclient import HTTPClientError, HTTPResponse
from tornado.httputil import HTTPServerRequest
from tornado.testing import gen_test
from tornado.web import Application, RequestHandler

from tornado_channels import Channel, ChannelHooks, Node, Reject, Target, channel_routes
from tornado_channels.core.frames import CLOSE_POLICY_VIOLATION

from ..helpers import NodeAppTestCase, closed, receive, silent


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
        await silent(ws)

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
        await silent(peer)
        await sender.write_message("after")
        self.assertEqual(await receive(peer), "AFTER")

    @gen_test
    async def test_message_hook_rejects_with_1008(self) -> None:
        """A message the hook rejects closes its sender with 1008 and the reason; others stay."""
        sender, peer = await self.ws("/live/room"), await self.ws("/live/room")
        await sender.write_message("bad")
        self.assertEqual(await closed(sender), (CLOSE_POLICY_VIOLATION, "no bad words"))
        await silent(peer)
        await self.post_as("/live/room", b"still open")
        self.assertEqual(await receive(peer), "still open")
