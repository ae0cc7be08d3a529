"""The HTTP and WebSocket edges of one process, on the embedded memory broker."""

from __future__ import annotations

import asyncio
import json

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.testing import gen_test
from tornado.web import Application

from tornado_channels import Node, make_app
from tornado_channels.core.frames import CLOSE_MESSAGE_TOO_BIG

from ..helpers import (
    NodeAppTestCase,
    RawResponse,
    closed,
    parse_responses,
    raw_websocket,
    receive,
)

MAX = 1024


class ChannelsTestCase(NodeAppTestCase):
    """A standalone app on a started memory-broker node, with a small maximum message size."""

    def make_app(self, node: Node) -> Application:
        return make_app(node, max_message_size=MAX)

    async def handshake_error(self, path: str) -> tuple[int, dict[str, str]]:
        with self.assertRaises(HTTPClientError) as caught:
            await self.ws(path)
        response = caught.exception.response
        assert response is not None
        return caught.exception.code, json.loads(response.body)


class PublishTest(ChannelsTestCase):
    @gen_test
    async def test_post_reaches_subscriber(self) -> None:
        """A POST to /users/1 arrives at a WebSocket subscribed to /users/1, byte for byte."""
        ws = await self.ws("/users/1")
        response = await self.post("/users/1", b"Hi there!")
        self.assertEqual(response.code, 202)
        body = json.loads(response.body)
        position = body.pop("position")
        self.assertEqual(body, {"published": True, "channel": "users/1", "bytes": 9})
        self.assertRegex(position, r"^[0-9a-f]+:1$")
        self.assertEqual(await receive(ws), "Hi there!")

    @gen_test
    async def test_post_to_other_channel_is_not_delivered(self) -> None:
        """A subscriber of users/1 receives nothing published to users/2 or users."""
        ws = await self.ws("/users/1")
        await self.post("/users/2", b"no")
        await self.post("/users", b"no")
        await self.quiet(ws)

    @gen_test
    async def test_subtree_publish_reaches_every_channel_below_only(self) -> None:
        """POST /users/ reaches users/1 and users/1/a, but not users itself nor users2."""
        child, grandchild = await self.ws("/users/1"), await self.ws("/users/1/a")
        itself, sibling = await self.ws("/users"), await self.ws("/users2/1")
        response = await self.post("/users/", b"everyone below")
        self.assertEqual(response.code, 202)
        self.assertEqual(json.loads(response.body)["subtree"], "users/")
        self.assertEqual(await receive(child), "everyone below")
        self.assertEqual(await receive(grandchild), "everyone below")
        await self.quiet(itself)
        await self.quiet(sibling)

    @gen_test
    async def test_root_publish_reaches_every_channel(self) -> None:
        """POST / reaches every channel, at any depth."""
        subscribers = [await self.ws(path) for path in ("/a", "/b/c", "/d/e/f")]
        await self.post("/", b"all")
        for ws in subscribers:
            self.assertEqual(await receive(ws), "all")

    @gen_test
    async def test_payloads_are_byte_exact_text_or_binary(self) -> None:
        """Valid UTF-8 arrives as a text frame, anything else as a binary frame, unchanged."""
        ws = await self.ws("/bytes")
        await self.post("/bytes", "héllo ✓".encode())
        await self.post("/bytes", b"\xff\x00\xfe raw")
        await self.post("/bytes", b"")
        self.assertEqual(await receive(ws), "héllo ✓")
        self.assertEqual(await receive(ws), b"\xff\x00\xfe raw")
        self.assertEqual(await receive(ws), "")

    @gen_test
    async def test_messages_arrive_in_publish_order(self) -> None:
        """Messages from one publisher arrive in the order they were published."""
        ws = await self.ws("/order")
        for i in range(50):
            await self.post("/order", str(i))
        self.assertEqual([await receive(ws) for _ in range(50)], [str(i) for i in range(50)])

    @gen_test
    async def test_percent_encoded_names_are_one_channel(self) -> None:
        """/caf%C3%A9 and /caf%c3%a9 are one channel; /CAF%C3%A9 is another (case matters)."""
        ws = await self.ws("/caf%C3%A9")
        upper = await self.ws("/CAF%C3%A9")
        await self.post("/caf%c3%a9", b"coffee")
        self.assertEqual(await receive(ws), "coffee")
        await self.quiet(upper)

    @gen_test
    async def test_glob_characters_are_literal(self) -> None:
        """A channel named a* is just that name: it does not match ab."""
        star, other = await self.ws("/a*"), await self.ws("/ab")
        await self.post("/a*", b"star")
        self.assertEqual(await receive(star), "star")
        await self.quiet(other)


class ChatTest(ChannelsTestCase):
    @gen_test
    async def test_client_message_reaches_every_subscriber_including_sender(self) -> None:
        """A frame a client sends reaches every subscriber of its channel, the sender too."""
        sender, peer, elsewhere = (
            await self.ws("/room"),
            await self.ws("/room"),
            await self.ws("/hall"),
        )
        await sender.write_message("hello room")
        self.assertEqual(await receive(sender), "hello room")
        self.assertEqual(await receive(peer), "hello room")
        await self.quiet(elsewhere)

    @gen_test
    async def test_binary_client_message_stays_binary(self) -> None:
        """A binary frame from a client is delivered as the same bytes in a binary frame."""
        sender = await self.ws("/room")
        await sender.write_message(b"\x00\xff", binary=True)
        self.assertEqual(await receive(sender), b"\x00\xff")

    @gen_test
    async def test_oversized_client_message_closes_only_that_client(self) -> None:
        """A WebSocket message over the maximum closes its sender with 1009; others keep working."""
        big, neighbour = await self.ws("/room"), await self.ws("/room")
        await big.write_message("x" * (MAX + 1))
        code, _ = await closed(big)
        self.assertEqual(code, CLOSE_MESSAGE_TOO_BIG)
        await self.post("/room", b"still here")
        self.assertEqual(await receive(neighbour), "still here")


class BadInputTest(ChannelsTestCase):
    BAD_PATHS = [
        ("/a//b", "empty segment"),
        ("/a/./b", "'.'"),
        ("/a/%2e%2e/b", "'..'"),
        ("/a%00b", "control character"),
        ("/a%0d%0ab", "control character"),
        ("/a%2Fb", "encoded '/'"),
        ("/%ff", "UTF-8"),
        ("/" + "x" * 256, "maximum is 255"),
    ]

    @gen_test
    async def test_invalid_names_are_refused_with_400_json(self) -> None:
        """POST, page and WebSocket handshake for an invalid name all get 400 and a JSON reason."""
        for path, reason in self.BAD_PATHS:
            with self.subTest(path=path):
                response = await self.post(path, b"x")
                self.assertEqual(response.code, 400)
                body = json.loads(response.body)
                self.assertEqual(body["error"], "invalid_channel")
                self.assertIn(reason, body["message"])
                page = await self.http_client.fetch(self.get_url(path), raise_error=False)
                self.assertEqual(page.code, 400)
                self.assertIn(reason, json.loads(page.body)["message"])
                code, handshake = await self.handshake_error(path)
                self.assertEqual(code, 400)
                self.assertIn(reason, handshake["message"])

    @gen_test
    async def test_bad_requests_leave_other_clients_served(self) -> None:
        """After a burst of bad requests a subscriber still gets the next good publish."""
        ws = await self.ws("/ok")
        for path, _ in self.BAD_PATHS:
            await self.post(path, b"x")
        await self.post("/ok", b"fine")
        self.assertEqual(await receive(ws), "fine")

    @gen_test
    async def test_oversized_body_is_refused_and_not_published(self) -> None:
        """A body over the maximum gets 413 with JSON, and nothing reaches subscribers."""
        ws = await self.ws("/big")
        response = await self.post("/big", b"x" * (MAX + 1))
        self.assertEqual(response.code, 413)
        self.assertEqual(json.loads(response.body)["error"], "message_too_large")
        await self.quiet(ws)

    @gen_test
    async def test_oversized_chunked_body_is_refused_and_not_published(self) -> None:
        """A chunked body (no Content-Length) that grows past the maximum also gets 413."""
        ws = await self.ws("/big")

        async def produce(write):  # type: ignore[no-untyped-def]
            for _ in range(4):
                await write(b"y" * (MAX // 2))

        request = HTTPRequest(self.get_url("/big"), method="POST", body_producer=produce)
        response = await self.http_client.fetch(request, raise_error=False)
        self.assertEqual(response.code, 413)
        await self.quiet(ws)

    @gen_test
    async def test_body_of_exactly_the_maximum_is_published(self) -> None:
        """A body of exactly the maximum size is accepted."""
        ws = await self.ws("/big")
        response = await self.post("/big", b"z" * MAX)
        self.assertEqual(response.code, 202)
        self.assertEqual(await receive(ws), "z" * MAX)

    @gen_test
    async def test_unsupported_method_gets_json_405(self) -> None:
        """PUT on a channel is 405 with a JSON body."""
        response = await self.http_client.fetch(
            self.get_url("/a"), method="PUT", body=b"x", raise_error=False
        )
        self.assertEqual(response.code, 405)
        self.assertEqual(json.loads(response.body)["error"], "method_not_allowed")

    @gen_test
    async def test_unknown_reserved_endpoint_gets_json_404(self) -> None:
        """Paths under /_/ are reserved: an unknown one is a JSON 404, not a channel."""
        response = await self.post("/_/nope", b"x")
        self.assertEqual(response.code, 404)
        self.assertEqual(json.loads(response.body)["error"], "not_found")


class BrokerDownTest(ChannelsTestCase):
    @gen_test
    async def test_broker_down_means_503_everywhere(self) -> None:
        """With the broker stopped, health, POST and handshakes answer 503 with JSON."""
        await self.node.broker.stop()
        health = await self.http_client.fetch(self.get_url("/_/health"), raise_error=False)
        self.assertEqual(health.code, 503)
        self.assertEqual(json.loads(health.body)["status"], "unavailable")
        response = await self.post("/a", b"x")
        self.assertEqual(response.code, 503)
        self.assertEqual(json.loads(response.body)["error"], "broker_unavailable")
        self.assertEqual(response.headers["Retry-After"], "1")
        code, body = await self.handshake_error("/a")
        self.assertEqual((code, body["error"]), (503, "broker_unavailable"))


class PagesTest(ChannelsTestCase):
    @gen_test
    async def test_health_is_200_json_while_connected(self) -> None:
        """GET /_/health is 200 with the broker kind while the broker is connected."""
        response = await self.http_client.fetch(self.get_url("/_/health"))
        body = json.loads(response.body)
        self.assertEqual((response.code, body["status"], body["broker"]), (200, "ok", "memory"))

    @gen_test
    async def test_channel_page_is_html_with_a_strict_policy(self) -> None:
        """GET /users/1 is an HTML page naming the channel, loading only our own assets."""
        response = await self.http_client.fetch(self.get_url("/users/1"))
        self.assertEqual(response.code, 200)
        self.assertIn("text/html", response.headers["Content-Type"])
        self.assertIn("script-src 'self'", response.headers["Content-Security-Policy"])
        self.assertEqual(response.headers["X-Content-Type-Options"], "nosniff")
        page = response.body.decode()
        self.assertIn("users/1", page)
        self.assertIn('src="/_/static/channel.js"', page)
        self.assertNotIn("http://", page.split("<body", 1)[0].replace(self.get_url(""), ""))

    @gen_test
    async def test_channel_name_is_escaped_in_the_page(self) -> None:
        """A channel named like markup appears escaped, never as a tag."""
        response = await self.http_client.fetch(
            self.get_url("/%3Cimg%20src=x%20onerror=alert(1)%3E")
        )
        page = response.body.decode()
        self.assertNotIn("<img src=x", page)
        self.assertIn("&lt;img src=x onerror=alert(1)&gt;", page)

    @gen_test
    async def test_home_page_keeps_channel_names_private_by_default(self) -> None:
        """GET / is the home page, and by default it names no active channel."""
        await self.ws("/lobby/secret-42")
        response = await self.http_client.fetch(self.get_url("/"))
        self.assertEqual(response.code, 200)
        self.assertIn('id="go"', response.body.decode())
        self.assertNotIn("secret-42", response.body.decode())


class ChannelListTest(ChannelsTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, list_channels=True)

    @gen_test
    async def test_home_page_lists_active_channels_when_asked(self) -> None:
        """With list_channels, the home page links each channel that has subscribers here."""
        await self.ws("/lobby/1")
        response = await self.http_client.fetch(self.get_url("/"))
        self.assertIn('href="/lobby/1"', response.body.decode())

    @gen_test
    async def test_static_assets_are_served_by_the_server(self) -> None:
        """The page's script and stylesheet come from the server itself."""
        for name, kind in (("channel.js", "javascript"), ("style.css", "css")):
            response = await self.http_client.fetch(self.get_url(f"/_/static/{name}"))
            self.assertEqual(response.code, 200)
            self.assertIn(kind, response.headers["Content-Type"])

    @gen_test
    async def test_a_subtree_page_watches_everything_below_without_a_send_box(self) -> None:
        """GET /users/ is the live page of the subtree: no send box, its presence URL."""
        response = await self.http_client.fetch(self.get_url("/users/"))
        page = response.body.decode()
        self.assertEqual(response.code, 200)
        self.assertIn('data-subtree="1"', page)
        self.assertIn('data-presence-url="/_/presence/users/"', page)
        self.assertNotIn('id="send"', page)


class SubscriptionLifecycleTest(ChannelsTestCase):
    @gen_test
    async def test_closed_client_is_unsubscribed(self) -> None:
        """When a client goes away its subscription is removed from the hub."""
        ws = await self.ws("/temp")
        self.assertEqual(self.node.hub.channels(), {"temp": 1})
        ws.close()
        for _ in range(100):
            if len(self.node.hub) == 0:
                break
            await asyncio.sleep(0.02)
        self.assertEqual(len(self.node.hub), 0)
        self.assertEqual(self.node.hub.channels(), {})


class DeadPeerTest(ChannelsTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, ping_interval=0.2, ping_timeout=0.2)

    @gen_test(timeout=20)
    async def test_peer_that_never_answers_pings_is_dropped(self) -> None:
        """A client that completes the handshake and then never answers a ping is reaped."""
        _, writer = await raw_websocket(self.get_http_port(), "/silent")
        self.assertEqual(self.node.hub.channels(), {"silent": 1})
        # Never read or answer anything: the pings go unanswered.
        for _ in range(200):
            if not len(self.node.hub):
                break
            await asyncio.sleep(0.05)
        self.assertEqual(len(self.node.hub), 0)
        writer.close()
        await writer.wait_closed()


class TornadoServerRefusalTest(NodeAppTestCase):
    """On Tornado's own HTTPServer (a mounted app), refusals still reach clients that send first."""

    async def exchange(
        self, raw: bytes, expect: int = 1, heads: tuple[int, ...] = ()
    ) -> list[RawResponse]:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.get_http_port())
        writer.write(raw)
        received = b""
        try:
            while len(parse_responses(received, heads)) < expect:
                chunk = await asyncio.wait_for(reader.read(1 << 20), 5)
                if not chunk:
                    break
                received += chunk
        finally:
            writer.close()
        return parse_responses(received, heads)

    @gen_test
    async def test_head_of_the_publish_endpoint_is_a_405_without_a_body(self) -> None:
        """HEAD /_/publish: 405, Allow: POST, no body, and the next request is answered."""
        raw = (
            b"HEAD /_/publish HTTP/1.1\r\nHost: x\r\n\r\nGET /_/health HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        head, health = await self.exchange(raw, expect=2, heads=(0,))
        self.assertEqual((head.status, head.headers["allow"], head.body), (405, "POST", b""))
        self.assertEqual(health.status, 200)

    @gen_test
    async def test_a_405_on_a_channel_names_its_methods(self) -> None:
        """PUT on a channel's path: 405 with Allow: GET, HEAD, POST and a JSON body."""
        [response] = await self.exchange(b"PUT /users/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(response.status, 405)
        self.assertEqual(response.headers["allow"], "GET, HEAD, POST")
        self.assertEqual(response.json()["error"], "method_not_allowed")

    @gen_test
    async def test_head_of_a_page_has_no_body(self) -> None:
        """HEAD /users/1 answers 200 with the page's headers and no body."""
        [response] = await self.exchange(b"HEAD /users/1 HTTP/1.1\r\nHost: x\r\n\r\n", heads=(0,))
        self.assertEqual(response.status, 200)
        self.assertEqual(response.body, b"")
        self.assertTrue(response.headers["content-type"].startswith("text/html"))

    @gen_test
    async def test_a_body_first_413_arrives_and_the_connection_lives_on(self) -> None:
        """A body just over the limit, sent whole first: 413, then a pipelined GET is answered."""
        body = b"x" * ((1 << 20) + 1)
        raw = (
            b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body)
            + body
            + b"GET /_/health HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        refused, health = await self.exchange(raw, expect=2)
        self.assertEqual(refused.status, 413)
        self.assertEqual(refused.json()["error"], "message_too_large")
        self.assertEqual(health.status, 200)

    @gen_test
    async def test_a_refused_small_post_keeps_the_connection(self) -> None:
        """An invalid name with a small body: 400, no Connection: close, the next one answered."""
        raw = (
            b"POST /a//b HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
            b"GET /_/health HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        refused, health = await self.exchange(raw, expect=2)
        self.assertEqual(refused.status, 400)
        self.assertNotIn("connection", refused.headers)
        self.assertEqual(health.status, 200)
