"""Who may publish and see what: the publish key, tokens, cross-site requests, read-only."""

from __future__ import annotations

import asyncio
import json

from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse
from tornado.testing import gen_test
from tornado.web import Application
from tornado.websocket import websocket_connect

from tornado_channels import Node, make_app
from tornado_channels.core.frames import CLOSE_POLICY_VIOLATION

from ..helpers import NodeAppTestCase, closed, raw_websocket, receive
from .test_tokens import SECRET, mint

KEY = "s3cret-key"


class PostingTestCase(NodeAppTestCase):
    """POSTs ``x`` to /news with chosen headers."""

    async def post_news(self, headers: dict[str, str]) -> HTTPResponse:
        return await self.post("/news", headers=headers)


class PublishKeyTest(PostingTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, publish_key=KEY)

    @gen_test
    async def test_post_without_the_key_is_401(self) -> None:
        """A POST without a key is refused with 401, a JSON reason and a Bearer challenge."""
        ws = await self.ws("/news")
        response = await self.post_news({})
        self.assertEqual(response.code, 401)
        self.assertEqual(json.loads(response.body)["error"], "unauthorized")
        self.assertIn("Bearer", response.headers["WWW-Authenticate"])
        await self.quiet(ws)

    @gen_test
    async def test_post_with_a_wrong_key_is_403(self) -> None:
        """A POST with the wrong key is refused with 403 and nothing is published."""
        ws = await self.ws("/news")
        for header in (f"Bearer {KEY}x", "Bearer s3cret", f"Basic {KEY}", "Bearer"):
            with self.subTest(header=header):
                response = await self.post_news({"Authorization": header})
                self.assertIn(response.code, (401, 403))
                self.assertIn(json.loads(response.body)["error"], ("unauthorized", "forbidden"))
        await self.quiet(ws)

    @gen_test
    async def test_a_channel_page_offers_no_send_box_a_browser_could_not_use(self) -> None:
        """With only a publish key, the live page has no send box (a browser cannot send it)."""
        response = await self.http_client.fetch(
            self.get_url("/news"), headers={"Accept": "text/html"}
        )
        page = response.body.decode()
        self.assertIn('data-channel="news"', page)
        self.assertNotIn('id="send"', page)

    @gen_test
    async def test_post_with_the_key_publishes(self) -> None:
        """A POST carrying 'Authorization: Bearer <key>' publishes as usual."""
        ws = await self.ws("/news")
        response = await self.post_news({"Authorization": f"Bearer {KEY}"})
        self.assertEqual(response.code, 202)
        self.assertEqual(await receive(ws), "x")


class TokenOnlyPublishingTest(NodeAppTestCase):
    """Tokens on, no publish key: every read public, so a listener on / hears any leak."""

    def make_app(self, node: Node) -> Application:
        return make_app(node, token_secret=SECRET, public=("/",))

    @gen_test
    async def test_anonymous_posts_are_refused_once_tokens_are_on(self) -> None:
        """POST /news, /news/, / and /_/publish without a credential: 401, nothing published."""
        everything = await self.ws("/")
        batch = json.dumps({"messages": [{"channel": "news", "data": "x"}]})
        for path, body in (("/news", "x"), ("/news/", "x"), ("/", "x"), ("/_/publish", batch)):
            with self.subTest(path=path):
                response = await self.post(path, body)
                self.assertEqual(response.code, 401)
                self.assertEqual(json.loads(response.body)["error"], "unauthorized")
                self.assertIn("publish grant", json.loads(response.body)["message"])
                self.assertIn("Bearer", response.headers["WWW-Authenticate"])
        await self.quiet(everything)

    @gen_test
    async def test_a_post_needs_a_publish_grant_for_its_target(self) -> None:
        """A token publishes where its publish grant reaches; POST / needs a grant of / itself."""
        everything = await self.ws("/")
        cases = [
            ([], "/news", 403),
            (["news"], "/news", 202),
            (["news"], "/news/", 403),
            (["news/"], "/news/a", 202),
            (["news/"], "/", 403),
            (["news", "sport/"], "/", 403),
            (["/"], "/", 202),
            (["/"], "/anything/at/all", 202),
        ]
        for grants, path, status in cases:
            with self.subTest(grants=grants, path=path):
                headers = {"Authorization": f"Bearer {mint(['/'], grants)}"}
                response = await self.post(path, f"{grants}{path}", headers=headers)
                self.assertEqual(response.code, status)
                if status == 202:
                    self.assertEqual(await receive(everything), f"{grants}{path}")
        await self.quiet(everything)

    @gen_test
    async def test_a_batch_needs_a_publish_grant_for_every_target(self) -> None:
        """POST /_/publish with a token: all targets granted publishes, a root target needs /."""
        everything = await self.ws("/")
        root = json.dumps(
            {"messages": [{"channel": "news", "data": "a"}, {"channel": "/", "data": "b"}]}
        )
        headers = {"Authorization": f"Bearer {mint(['/'], ['news'])}"}
        self.assertEqual((await self.post("/_/publish", root, headers=headers)).code, 403)
        await self.quiet(everything)
        headers = {"Authorization": f"Bearer {mint(['/'], ['/'])}"}
        self.assertEqual((await self.post("/_/publish", root, headers=headers)).code, 202)
        self.assertEqual([await receive(everything), await receive(everything)], ["a", "b"])

    @gen_test
    async def test_chat_needs_a_publish_grant(self) -> None:
        """An anonymous listener's message closes it with 1008; a granted client's publishes."""
        listener = await self.ws("/room")
        anonymous = await self.ws("/room")
        await anonymous.write_message("spoofed")
        code, reason = await closed(anonymous)
        self.assertEqual(code, CLOSE_POLICY_VIOLATION)
        self.assertEqual(reason, "no token grants publishing here")
        await self.quiet(listener)
        granted = await self.ws(f"/room?token={mint(['/'], ['room'])}")
        await granted.write_message("hello")
        self.assertEqual(await receive(listener), "hello")


class KeyOnlyChatTest(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, publish_key=KEY)

    @gen_test
    async def test_chat_needs_the_key_once_one_is_set(self) -> None:
        """Key only: a client's message closes it with 1008, unless its handshake had the key."""
        listener = await self.ws("/room")
        anonymous = await self.ws("/room")
        await anonymous.write_message("spoofed")
        code, reason = await closed(anonymous)
        self.assertEqual(
            (code, reason), (CLOSE_POLICY_VIOLATION, "publishing needs the publish key")
        )
        await self.quiet(listener)
        request = HTTPRequest(
            f"ws://127.0.0.1:{self.get_http_port()}/room",
            headers={"Authorization": f"Bearer {KEY}"},
        )
        backend = await websocket_connect(request)
        self.clients.append(backend)
        await backend.write_message("from the backend")
        self.assertEqual(await receive(listener), "from the backend")


class CrossSiteTest(PostingTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, trusted_origins=("https://app.example",))

    @gen_test
    async def test_cross_site_post_is_refused(self) -> None:
        """A browser POST from another site is refused with 403 JSON and not published."""
        ws = await self.ws("/news")
        for headers in (
            {"Origin": "https://evil.example"},
            {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        ):
            with self.subTest(headers=headers):
                response = await self.post_news(headers)
                self.assertEqual(response.code, 403)
                self.assertEqual(json.loads(response.body)["error"], "forbidden")
        await self.quiet(ws)

    @gen_test
    async def test_sec_fetch_site_decides_when_present(self) -> None:
        """Sec-Fetch-Site other than same-origin/none is 403 even with the server's own Origin."""
        ws = await self.ws("/news")
        own = f"http://127.0.0.1:{self.get_http_port()}"
        for headers in (
            {"Origin": own, "Sec-Fetch-Site": "cross-site"},
            {"Origin": own, "Sec-Fetch-Site": "same-site"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin-ish"},
        ):
            with self.subTest(headers=headers):
                response = await self.post_news(headers)
                self.assertEqual(response.code, 403)
                self.assertEqual(json.loads(response.body)["error"], "forbidden")
        await self.quiet(ws)
        for headers in (
            {"Origin": "https://evil.example", "Sec-Fetch-Site": "same-origin"},
            {"Sec-Fetch-Site": "none"},
            {"Origin": "https://app.example", "Sec-Fetch-Site": "same-site"},
        ):
            with self.subTest(headers=headers):
                self.assertEqual((await self.post_news(headers)).code, 202)
                self.assertEqual(await receive(ws), "x")

    @gen_test
    async def test_same_site_trusted_and_non_browser_posts_pass(self) -> None:
        """Same-origin, trusted-origin and non-browser (no Origin) POSTs publish."""
        ws = await self.ws("/news")
        host = f"127.0.0.1:{self.get_http_port()}"
        for headers in (
            {},
            {"Origin": f"http://{host}"},
            {"Sec-Fetch-Site": "same-origin", "Origin": f"http://{host}"},
            {"Origin": "https://app.example", "Sec-Fetch-Site": "cross-site"},
        ):
            with self.subTest(headers=headers):
                self.assertEqual((await self.post_news(headers)).code, 202)
                self.assertEqual(await receive(ws), "x")


class WebSocketOriginTest(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, trusted_origins=("https://app.example",))

    @gen_test
    async def test_cross_site_handshake_is_refused_with_403_json(self) -> None:
        """A WebSocket handshake from another site is refused with 403 and a JSON reason."""
        request = HTTPRequest(
            f"ws://127.0.0.1:{self.get_http_port()}/news",
            headers={"Origin": "https://evil.example"},
        )
        with self.assertRaises(HTTPClientError) as caught:
            await websocket_connect(request)
        self.assertEqual(caught.exception.code, 403)
        assert caught.exception.response is not None
        self.assertEqual(json.loads(caught.exception.response.body)["error"], "forbidden_origin")

    @gen_test
    async def test_sec_fetch_site_decides_the_handshake_too(self) -> None:
        """A handshake saying Sec-Fetch-Site: cross-site is 403 even with the server's Origin."""
        request = HTTPRequest(
            f"ws://127.0.0.1:{self.get_http_port()}/news",
            headers={
                "Origin": f"http://127.0.0.1:{self.get_http_port()}",
                "Sec-Fetch-Site": "cross-site",
            },
        )
        with self.assertRaises(HTTPClientError) as caught:
            self.clients.append(await websocket_connect(request))
        self.assertEqual(caught.exception.code, 403)

    @gen_test
    async def test_same_site_and_trusted_handshakes_pass(self) -> None:
        """Handshakes from the page's own origin or a trusted one are accepted."""
        for origin in (f"http://127.0.0.1:{self.get_http_port()}", "https://app.example"):
            with self.subTest(origin=origin):
                request = HTTPRequest(
                    f"ws://127.0.0.1:{self.get_http_port()}/news", headers={"Origin": origin}
                )
                conn = await websocket_connect(request)
                self.clients.append(conn)
                await self.http_client.fetch(self.get_url("/news"), method="POST", body=b"hi")
                self.assertEqual(await receive(conn), "hi")


class ReadOnlyTest(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, read_only=("news",))

    @gen_test
    async def test_clients_cannot_publish_below_a_read_only_prefix(self) -> None:
        """A client publishing to a read-only channel is closed with 1008; POSTs still work."""
        reader, talker = await self.ws("/news/1"), await self.ws("/news/1")
        await talker.write_message("spoofed headline")
        code, reason = await closed(talker)
        self.assertEqual(code, CLOSE_POLICY_VIOLATION)
        self.assertIn("disabled", reason or "")
        await self.quiet(reader)
        await self.http_client.fetch(self.get_url("/news/1"), method="POST", body=b"real")
        self.assertEqual(await receive(reader), "real")

    @gen_test
    async def test_other_channels_keep_client_publishing(self) -> None:
        """Channels outside the read-only prefixes (even newsroom) keep chat working."""
        sender = await self.ws("/newsroom")
        await sender.write_message("chat")
        self.assertEqual(await receive(sender), "chat")


class ReadOnlyWithTrailingSlashTest(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        # The README's own spelling: a trailing slash, as in a subtree's path.
        return make_app(node, read_only=("users/", "news/"))

    @gen_test
    async def test_a_trailing_slash_covers_the_channel_and_everything_below(self) -> None:
        """``users/`` protects ``users``, ``users/1`` and ``news/a/b`` as ``users`` would."""
        for path in ("/users", "/users/1", "/news/a/b"):
            with self.subTest(path=path):
                talker = await self.ws(path)
                await talker.write_message("spoofed")
                code, reason = await closed(talker)
                self.assertEqual(code, CLOSE_POLICY_VIOLATION)
                self.assertIn("disabled", reason or "")

    @gen_test
    async def test_segment_boundaries_hold_with_a_trailing_slash(self) -> None:
        """``users/`` never covers ``userspace``: chat there still works."""
        sender = await self.ws("/userspace/1")
        await sender.write_message("chat")
        self.assertEqual(await receive(sender), "chat")


class ConnectionCapTest(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, max_connections=2)

    @gen_test
    async def test_handshakes_beyond_the_cap_get_503(self) -> None:
        """The third WebSocket on a process capped at two is refused with 503 JSON."""
        first, _second = await self.ws("/a"), await self.ws("/b")
        with self.assertRaises(HTTPClientError) as caught:
            await self.ws("/c")
        self.assertEqual(caught.exception.code, 503)
        assert caught.exception.response is not None
        self.assertEqual(
            json.loads(caught.exception.response.body)["error"], "too_many_connections"
        )
        first.close()
        for _ in range(100):
            if len(self.node.hub) < 2:
                break
            await asyncio.sleep(0.02)
        third = await self.ws("/c")
        await self.http_client.fetch(self.get_url("/c"), method="POST", body=b"room again")
        self.assertEqual(await receive(third), "room again")


class RateLimitTest(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, client_rate=5, client_burst=10)

    @gen_test
    async def test_message_flood_is_closed_and_neighbours_stay_fast(self) -> None:
        """A client sending far over its rate is closed with 1008; a neighbour stays fast."""
        flooder, neighbour = await self.ws("/noisy"), await self.ws("/quiet")
        for number in range(200):
            await flooder.write_message(f"spam {number}")
        code, reason = await closed(flooder)
        self.assertEqual((code, reason), (CLOSE_POLICY_VIOLATION, "rate limit exceeded"))
        started = asyncio.get_running_loop().time()
        await self.http_client.fetch(self.get_url("/quiet"), method="POST", body=b"ping")
        self.assertEqual(await receive(neighbour), "ping")
        self.assertLess(asyncio.get_running_loop().time() - started, 0.5)

    @gen_test
    async def test_ping_flood_is_closed(self) -> None:
        """A client flooding pings is closed with 1008 like any other flood."""
        flooder = await self.ws("/noisy")
        for _ in range(200):
            flooder.ping(b"x")
        code, reason = await closed(flooder)
        self.assertEqual((code, reason), (CLOSE_POLICY_VIOLATION, "rate limit exceeded"))

    @gen_test
    async def test_a_client_within_its_rate_is_untouched(self) -> None:
        """Ten messages within the burst are all published."""
        sender = await self.ws("/chat")
        for number in range(10):
            await sender.write_message(str(number))
        self.assertEqual([await receive(sender) for _ in range(10)], [str(n) for n in range(10)])


class FragmentFloodTest(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, client_rate=5, client_burst=10)

    @gen_test
    async def test_fragment_flood_is_closed(self) -> None:
        """Hundreds of tiny continuation frames are a flood: the client is closed with 1008."""
        reader, writer = await raw_websocket(self.get_http_port(), "/frag")
        # A text message opened and never finished: 500 one-byte fragments.
        # Client frames are masked; a zero mask leaves the payload as is.
        frames = bytes([0x01, 0x81, 0, 0, 0, 0]) + b"a"
        frames += (bytes([0x00, 0x81, 0, 0, 0, 0]) + b"a") * 499
        writer.write(frames)
        head = await asyncio.wait_for(reader.readexactly(4), 5)
        self.assertEqual(head[0], 0x88)  # FIN + close
        self.assertEqual(int.from_bytes(head[2:4], "big"), CLOSE_POLICY_VIOLATION)
        writer.close()
        await writer.wait_closed()


class StatsTestCase(NodeAppTestCase):
    """GET /_/stats with one subscriber of a private-sounding channel."""

    async def stats(self, **headers: str) -> dict[str, object]:
        response = await self.http_client.fetch(self.get_url("/_/stats"), headers=headers)
        self.assertEqual(response.code, 200)
        result: dict[str, object] = json.loads(response.body)
        return result


class TokenGatedStatsTest(StatsTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, token_secret=SECRET, publish_key=KEY)

    @gen_test
    async def test_names_only_to_the_publish_key(self) -> None:
        """Anonymous, a token or a wrong key get counts without names; the key gets the names."""
        await self.ws(f"/secret/merger?token={mint(['secret/merger'])}")
        token = mint(["/"], ["/"])
        for headers in ({}, {"Authorization": f"Bearer {token}"}, {"Authorization": "Bearer no"}):
            with self.subTest(headers=headers):
                stats = await self.stats(**headers)
                self.assertNotIn("channels", stats)
                self.assertNotIn("secret/merger", json.dumps(stats))
                self.assertEqual((stats["subscriptions"], stats["channel_count"]), (1, 1))
        keyed = await self.stats(Authorization=f"Bearer {KEY}")
        self.assertEqual(keyed["channels"], {"secret/merger": 1})


class TokenOnlyStatsTest(StatsTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, token_secret=SECRET, public=("/",))

    @gen_test
    async def test_a_token_gated_server_without_a_key_never_names_channels(self) -> None:
        """No publish key to show: names to no one, even a token granting everything."""
        await self.ws("/secret/merger")
        for headers in ({}, {"Authorization": f"Bearer {mint(['/'], ['/'])}"}):
            with self.subTest(headers=headers):
                stats = await self.stats(**headers)
                self.assertNotIn("channels", stats)
                self.assertEqual(stats["channel_count"], 1)


class KeyOnlyStatsTest(StatsTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, publish_key=KEY)

    @gen_test
    async def test_a_keyed_server_names_channels_to_the_key_only(self) -> None:
        """Key only: anonymous stats have counts, the key's have names too."""
        await self.ws("/secret/merger")
        self.assertNotIn("channels", await self.stats())
        keyed = await self.stats(Authorization=f"Bearer {KEY}")
        self.assertEqual(keyed["channels"], {"secret/merger": 1})
