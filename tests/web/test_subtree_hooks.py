"""Hooks and subtrees: a subtree subscription never gets past rules written for channels."""

from __future__ import annotations

import json
import logging
from typing import Any

from tornado.httpclient import HTTPResponse
from tornado.httputil import HTTPServerRequest
from tornado.testing import gen_test
from tornado.web import Application

from tornado_channels import Channel, ChannelHooks, Node, Reject, Subtree, Target, channel_routes

from ..helpers import EventStream, NodeAppTestCase, receive

HANDSHAKE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


class ChannelRules(ChannelHooks):
    """Today's hook API: rules for channels only (private/ is refused)."""

    def authorize_subscribe(self, request: HTTPServerRequest, channel: Channel) -> bool:
        return not channel.name.startswith("private/")


class TreeRules(ChannelRules):
    """The same rules, opted in to subtrees: those reaching private/ are refused."""

    async def authorize_subtree(self, request: HTTPServerRequest, subtree: Subtree) -> bool:
        if subtree.within("closed/"):
            raise Reject("closed for now")
        return not subtree.overlaps("private/")


class PublishRules(ChannelHooks):
    """Rules for publishing only: subscribing stays open everywhere."""

    def authorize_publish(self, request: HTTPServerRequest, target: Target) -> bool:
        return request.headers.get("X-Token") == "secret"


class BrokenRules(ChannelHooks):
    """Hooks with a bug: a plain one that raises, and a coroutine that raises."""

    def authorize_subscribe(self, request: HTTPServerRequest, channel: Channel) -> bool:
        raise RuntimeError("secret-detail of a channel hook")

    async def authorize_subtree(self, request: HTTPServerRequest, subtree: Subtree) -> bool:
        raise KeyError("secret-detail of a subtree hook")


class HooksTestCase(NodeAppTestCase):
    """Channels mounted at /live/ with the class's HOOKS."""

    HOOKS: type[ChannelHooks] = ChannelHooks

    def make_app(self, node: Node) -> Application:
        return Application(channel_routes(node, prefix="/live/", hooks=self.HOOKS()))

    async def handshake(self, path: str) -> HTTPResponse:
        """A WebSocket handshake for ``path`` that may be refused (answered, not raised)."""
        return await self.http_client.fetch(
            self.get_url(path), headers=HANDSHAKE, raise_error=False
        )

    async def refusal(self, path: str, **headers: str) -> tuple[int, dict[str, Any]]:
        """The status and JSON body of a GET that must be refused."""
        response = await self.http_client.fetch(
            self.get_url(path), headers=headers, raise_error=False
        )
        self.assertNotEqual(response.code, 200)
        return response.code, json.loads(response.body)


class ChannelRulesTest(HooksTestCase):
    HOOKS = ChannelRules

    @gen_test
    async def test_subtrees_are_refused_without_an_opt_in(self) -> None:
        """With only authorize_subscribe overridden, every subtree is a 403 asking for an opt-in."""
        for path in ("/live/", "/live/public/", "/live/private/"):
            response = await self.handshake(path)
            self.assertEqual(response.code, 403, path)
            body = json.loads(response.body)
            self.assertEqual(body["error"], "forbidden")
            self.assertIn("opt-in", body["message"])
            self.assertIn("subtree", body["message"])

    @gen_test
    async def test_event_streams_and_presence_of_subtrees_are_refused_too(self) -> None:
        """An event stream of / and the presence of / get the same 403 as the WebSocket."""
        code, body = await self.refusal("/live/", Accept="text/event-stream")
        self.assertEqual((code, body["error"]), (403, "forbidden"))
        self.assertIn("opt-in", body["message"])
        code, body = await self.refusal("/live/_/presence/")
        self.assertEqual((code, body["error"]), (403, "forbidden"))
        self.assertIn("opt-in", body["message"])

    @gen_test
    async def test_channels_are_decided_by_the_hook_as_before(self) -> None:
        """A public channel subscribes; a private one, and its presence, are refused."""
        listener = await self.ws("/live/public/x")
        await self.publish("/live/public/x", b"hi")
        self.assertEqual(await receive(listener), "hi")
        self.assertEqual((await self.handshake("/live/private/x")).code, 403)
        self.assertEqual((await self.refusal("/live/_/presence/private/x"))[0], 403)


class TreeRulesTest(HooksTestCase):
    HOOKS = TreeRules

    @gen_test
    async def test_an_opted_in_hook_decides_subtrees(self) -> None:
        """public/ subscribes and hears below it; / and private/ are refused; Reject has its say."""
        listener = await self.ws("/live/public/")
        await self.publish("/live/public/a/b", b"below public")
        self.assertEqual(await receive(listener), "below public")
        for subtree in ("/", "private/", "private/x/"):
            response = await self.handshake("/live/" + subtree.lstrip("/"))
            self.assertEqual(response.code, 403, subtree)
            message = json.loads(response.body)["message"]
            self.assertEqual(message, f"subscribing to '{subtree}' is not allowed")
        response = await self.handshake("/live/closed/")
        self.assertEqual(json.loads(response.body)["message"], "closed for now")

    @gen_test
    async def test_an_opted_in_hook_decides_event_streams_and_presence(self) -> None:
        """The event stream and presence of public/ answer; those of / are refused."""
        stream = await EventStream.open(self.get_http_port(), "/live/public/")
        try:
            await self.publish("/live/public/a", b"streamed")
            outcome, event = await stream.next(), await stream.next()
            assert outcome is not None
            assert event is not None
            self.assertTrue(json.loads(outcome["data"])["recovered"])
            self.assertEqual(json.loads(event["data"])["data"], "streamed")
        finally:
            stream.close()
        presence = await self.http_client.fetch(self.get_url("/live/_/presence/public/"))
        self.assertEqual(json.loads(presence.body)["subtree"], "public/")
        self.assertEqual((await self.refusal("/live/", Accept="text/event-stream"))[0], 403)
        self.assertEqual((await self.refusal("/live/_/presence/"))[0], 403)


class PublishRulesTest(HooksTestCase):
    HOOKS = PublishRules

    @gen_test
    async def test_hooks_that_leave_subscribing_alone_keep_subtrees_open(self) -> None:
        """Without its own authorize_subscribe, an application's subtrees subscribe as before."""
        listener = await self.ws("/live/")
        response = await self.post("/live/users/1", b"to all", headers={"X-Token": "secret"})
        self.assertEqual(response.code, 202)
        self.assertEqual(await receive(listener), "to all")


class DefaultHooksTest(HooksTestCase):
    @gen_test
    async def test_default_hooks_keep_subtrees_open(self) -> None:
        """With no hook overridden, / subscribes and hears every channel."""
        listener = await self.ws("/live/")
        await self.publish("/live/private/x", b"anything")
        self.assertEqual(await receive(listener), "anything")


class BrokenRulesTest(HooksTestCase):
    HOOKS = BrokenRules

    @gen_test
    async def test_a_hook_that_raises_is_a_json_500_that_says_nothing_of_it(self) -> None:
        """A raising hook, plain or coroutine, answers 500 internal_error; only the log says why."""
        for path in ("/live/users/1", "/live/users/"):
            with self.assertLogs("tornado_channels.hooks", logging.ERROR) as logs:
                response = await self.handshake(path)
            self.assertEqual(response.code, 500, path)
            self.assertEqual(json.loads(response.body)["error"], "internal_error")
            self.assertNotIn(b"secret-detail", response.body)
            self.assertNotIn(b"Traceback", response.body)
            self.assertIn("secret-detail", "\n".join(logs.output))
