"""--auth-url and --publish-url against a real HTTP backend: allow, deny, fail, cache, rewrite."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from typing import Any

from tornado.httpclient import HTTPRequest
from tornado.testing import gen_test
from tornado.web import Application
from tornado.websocket import WebSocketClientConnection, websocket_connect

from tornado_channels import Node, make_app
from tornado_channels.web.backend import BackendHooks, BackendSettings

from ..helpers import NodeAppTestCase, closed, free_port, receive, until
from ..helpers.hook_backend import HookBackend
from .test_tokens import SECRET, mint

COOKIE = {"Cookie": "session=u42; theme=dark"}


class BackendHooksTestCase(NodeAppTestCase):
    """An app whose hooks ask a HookBackend running on the same loop."""

    token_secret: str | None = None
    auth_cache = 5.0
    # Generous: a loaded CI machine must never turn a prompt answer into a timeout.
    auth_timeout = 5.0

    def backend_settings(self, url: str) -> BackendSettings:
        return BackendSettings(
            auth_url=url,
            auth_cache=self.auth_cache,
            auth_timeout=self.auth_timeout,
            publish_url=url,
        )

    def hold_past_the_timeout(self) -> None:
        """The backend stops answering, and the hooks wait for it only half a second."""
        self.hooks.settings = dataclasses.replace(self.hooks.settings, auth_timeout=0.5)
        self.backend.hold = True

    def make_app(self, node: Node) -> Application:
        self.backend = HookBackend().start()
        self.hooks = BackendHooks(self.backend_settings(self.backend.url))
        return make_app(node, hooks=self.hooks, token_secret=self.token_secret)

    def tearDown(self) -> None:
        self.io_loop.run_sync(self.backend.stop)
        self.hooks.close()
        super().tearDown()

    async def handshake(self, path: str, **headers: str) -> tuple[int, dict[str, Any]]:
        """A raw WebSocket handshake's status, and its JSON body when refused."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.get_http_port())
        try:
            extra = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                f"Sec-WebSocket-Version: 13\r\n{extra}\r\n".encode()
            )
            status = int((await asyncio.wait_for(reader.readline(), 10)).split()[1])
            length = 0
            while (line := await asyncio.wait_for(reader.readline(), 10)) != b"\r\n":
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
            return status, json.loads(body) if body else {}
        finally:
            writer.close()
            await writer.wait_closed()

    async def ws_with(self, path: str, **headers: str) -> WebSocketClientConnection:
        """A WebSocket to ``path`` sending ``headers``; closed at teardown."""
        url = f"ws://127.0.0.1:{self.get_http_port()}{path}"
        conn = await websocket_connect(HTTPRequest(url, headers=headers))
        self.clients.append(conn)
        return conn

    async def presence(self, path: str, **headers: str) -> tuple[int, dict[str, Any]]:
        response = await self.http_client.fetch(
            self.get_url("/_/presence/" + path), raise_error=False, headers=headers
        )
        return response.code, json.loads(response.body)


class AuthUrlTest(BackendHooksTestCase):
    @gen_test
    async def test_an_allow_names_the_user_presence_lists(self) -> None:
        """200 {user} lets the subscriber in as that user, and the backend saw what it needs."""
        await self.ws_with("/users/42", **COOKIE, Origin=self.get_url(""), **{"User-Agent": "t"})
        code, answer = await self.presence("users/42", **COOKIE)
        assert code == 200
        assert answer == {"channel": "users/42", "subscribers": 1, "users": ["u42"]}
        asked = self.backend.received[0]
        assert (asked["kind"], asked["channel"]) == ("subscribe", "users/42")
        assert asked["headers"]["Cookie"] == "session=u42; theme=dark"
        assert asked["headers"]["User-Agent"] == "t"
        assert asked["remote_ip"] == "127.0.0.1"

    @gen_test
    async def test_refusals_answer_their_status_and_json(self) -> None:
        """401 and 403 from the backend refuse the handshake alike, with the backend's message."""
        self.backend.answers[("subscribe", "a")] = (401, {"message": "log in first"})
        self.backend.answers[("subscribe", "b")] = (403, {})
        assert await self.handshake("/a") == (
            401, {"error": "unauthorized", "message": "log in first"},
        )  # fmt: skip
        status, body = await self.handshake("/b")
        assert (status, body["error"]) == (403, "forbidden")
        code, answer = await self.presence("b")
        assert (code, answer["error"]) == (403, "forbidden")

    @gen_test
    async def test_a_5xx_a_timeout_or_a_bad_answer_is_503_never_allowed(self) -> None:
        """A 500, a malformed 200 and a backend slower than the timeout all answer 503."""
        self.backend.answers[("subscribe", "fail")] = (500, {})
        self.backend.answers[("subscribe", "odd")] = (200, b"[1, 2]")
        for path in ("/fail", "/odd"):
            status, body = await self.handshake(path)
            assert (status, body["error"]) == (503, "auth_unavailable"), (path, body)
        self.hold_past_the_timeout()
        status, body = await self.handshake("/slow")
        assert (status, body["error"]) == (503, "auth_unavailable")
        assert "did not answer" in body["message"]

    @gen_test
    async def test_answers_are_cached_by_credentials_and_channel(self) -> None:
        """The same cookie on the same channel asks once; another cookie or channel asks again."""
        self.backend.answers[("subscribe", "no")] = (403, {})
        for _ in range(3):
            assert (await self.handshake("/no", **COOKIE))[0] == 403
            await self.ws_with("/yes", **COOKIE)
        assert self.backend.count() == 2
        await self.ws_with("/yes", Cookie="session=u7")
        await self.ws_with("/yes/2", **COOKIE)
        assert self.backend.count() == 4

    @gen_test(timeout=30)
    async def test_concurrent_identical_asks_collapse_into_one_request(self) -> None:
        """Twenty handshakes asking at once for the same answer make one backend request."""
        for rounds in range(1, 4):
            self.backend.hold = True
            path = f"/room/{rounds}"
            handshakes = [asyncio.ensure_future(self.ws_with(path, **COOKIE)) for _ in range(20)]
            waiting = 19 * rounds
            # The one ask has reached the backend, and the other 19 wait for its answer.
            await until(
                lambda: self.hooks.collapsed == waiting and self.backend.count() == rounds,  # noqa: B023
                what="all waiting",
            )
            self.backend.release()
            await asyncio.wait_for(asyncio.gather(*handshakes), 10)
        _, answer = await self.presence("room/3", **COOKIE)
        assert answer["subscribers"] == 20

    @gen_test
    async def test_the_backend_down_then_back(self) -> None:
        """While nothing listens at the URL subscribes get 503; once it answers, they get in."""
        port = free_port()
        self.hooks.close()
        self.hooks.settings = self.backend_settings(f"http://127.0.0.1:{port}/hook")
        status, body = await self.handshake("/users/1", **COOKIE)
        assert (status, body["error"]) == (503, "auth_unavailable")
        back = HookBackend(port).start()
        try:
            conn = await self.ws_with("/users/1", **COOKIE)
            assert conn.close_code is None
            assert back.count() == 1
        finally:
            await back.stop()

    @gen_test
    async def test_an_expired_allow_is_asked_again_and_a_refusal_closes_4001(self) -> None:
        """expires_in has the backend asked again: a yes keeps it, then a no closes with 4001."""
        self.backend.expires_in = 0.2
        conn = await self.ws_with("/users/42", **COOKIE)
        await until(lambda: self.backend.count() >= 2, what="a second ask")
        assert conn.close_code is None
        await self.post("/users/42", "still here")
        assert await receive(conn) == "still here"
        self.backend.answers[("subscribe", "users/42")] = (403, {"message": "revoked"})
        code, reason = await closed(conn)
        assert code == 4001
        assert "revoked" in str(reason)

    @gen_test
    async def test_a_subtree_is_asked_with_its_trailing_slash(self) -> None:
        """Subscribing to users/ asks about channel "users/"."""
        await self.ws_with("/users/", **COOKIE)
        assert self.backend.received[0]["channel"] == "users/"


class AuthUrlWithTokensTest(BackendHooksTestCase):
    token_secret = SECRET

    @gen_test
    async def test_a_valid_token_decides_and_the_backend_decides_the_rest(self) -> None:
        """A token's handshake never reaches the backend; one without a token is asked, not 401."""
        token = mint(sub="t1", subscribe=["users/1"])
        await self.ws(f"/users/1?token={token}")
        assert (await self.handshake(f"/users/2?token={token}"))[0] == 403  # Its grants decide.
        assert self.backend.count() == 0
        await self.ws_with("/users/1", **COOKIE)
        assert self.backend.count() == 1
        _, answer = await self.presence("users/1", **COOKIE)
        assert sorted(answer["users"]) == ["t1", "u42"]


class PublishUrlTest(BackendHooksTestCase):
    @gen_test
    async def test_a_post_is_rewritten_dropped_or_refused(self) -> None:
        """200 + body rewrites, 204 drops (202 dropped), 403 refuses, 500 is 502, a hang 503."""
        sub = await self.ws_with("/room", **COOKIE)
        self.backend.answers[("publish", "room")] = (200, b"rewritten")
        assert (await self.post("/room", "original")).code == 202
        assert await receive(sub) == "rewritten"
        self.backend.answers[("publish", "room")] = (204, b"")
        response = await self.post("/room", "gone")
        assert response.code == 202
        assert json.loads(response.body) == {"published": False, "dropped": True, "channel": "room"}
        for status, expected in ((403, 403), (500, 502)):
            self.backend.answers[("publish", "room")] = (status, {})
            assert (await self.post("/room", "no")).code == expected
        self.hold_past_the_timeout()
        response = await self.post("/room", "late")
        assert (response.code, json.loads(response.body)["error"]) == (
            503, "publish_hook_unavailable",
        )  # fmt: skip
        self.backend.release()
        self.backend.answers.pop(("publish", "room"))
        await self.publish("/room", b"\xff\xfe")
        assert await receive(sub) == b"\xff\xfe"  # Nothing refused before it was published.
        sent = [body for body in self.backend.received if body["kind"] == "publish"]
        assert sent[0] == {"kind": "publish", "channel": "room", "user": None, "data": "original"}
        assert sent[-1]["data_base64"] == "//4="

    @gen_test
    async def test_a_batch_without_the_key_is_refused(self) -> None:
        """POST /_/publish without the publish key is 403 publish_key_required; nothing is asked."""
        body = json.dumps({"messages": [{"channel": "room", "data": "x"}]})
        response = await self.post("/_/publish", body)
        assert (response.code, json.loads(response.body)["error"]) == (
            403, "publish_key_required",
        )  # fmt: skip
        assert self.backend.count("publish") == 0

    @gen_test
    async def test_chat_is_rewritten_dropped_then_refused_with_1008(self) -> None:
        """A client's message goes to the backend with its user: rewritten, dropped, refused."""
        conn = await self.ws_with("/room", **COOKIE)
        self.backend.answers[("publish", "room")] = (200, b"[u42] hi")
        conn.write_message("hi")
        assert await receive(conn) == "[u42] hi"
        self.backend.answers[("publish", "room")] = (204, b"")
        conn.write_message("dropped")
        await until(lambda: self.backend.count("publish") == 2, what="the second ask")
        self.backend.answers[("publish", "room")] = (200, b"after the drop")
        conn.write_message("x")
        assert await receive(conn) == "after the drop"  # Not "dropped": it never went out.
        self.backend.answers[("publish", "room")] = (403, {"message": "muted"})
        conn.write_message("third")
        assert await closed(conn) == (1008, "muted")
        assert self.backend.received[-1]["user"] == "u42"

    @gen_test
    async def test_chat_with_a_failing_backend_closes_1008_naming_it(self) -> None:
        """A 500 from the publish hook closes the client 1008 naming it; nothing is published."""
        conn = await self.ws_with("/room", **COOKIE)
        watcher = await self.ws_with("/room", Cookie="session=u7")
        self.backend.answers[("publish", "room")] = (500, {})
        conn.write_message("lost")
        code, reason = await closed(conn)
        assert code == 1008
        assert "500" in str(reason)
        await self.post("/room", "after")  # 500 too: refused, still nothing on the channel.
        self.backend.answers.pop(("publish", "room"))
        await self.publish("/room", "next")
        assert await receive(watcher) == "next"

    @gen_test
    async def test_chat_with_a_backend_too_slow_closes_1008_and_publishes_nothing(self) -> None:
        """A publish hook that does not answer in time closes the client 1008 saying so."""
        conn = await self.ws_with("/room", **COOKIE)
        watcher = await self.ws_with("/room", Cookie="session=u7")
        self.hold_past_the_timeout()
        conn.write_message("late")
        code, reason = await closed(conn)
        assert code == 1008
        assert "did not answer" in str(reason)
        self.backend.release()
        await self.publish("/room", "next")
        assert await receive(watcher) == "next"


class PublishKeyBypassTest(BackendHooksTestCase):
    def make_app(self, node: Node) -> Application:
        self.backend = HookBackend().start()
        self.hooks = BackendHooks(self.backend_settings(self.backend.url))
        return make_app(node, hooks=self.hooks, publish_key="k" * 32)

    @gen_test
    async def test_the_publish_key_skips_the_publish_hook(self) -> None:
        """A POST and a batch with the key publish without asking the backend."""
        headers = {"Authorization": "Bearer " + "k" * 32}
        sub = await self.ws_with("/room", **COOKIE)
        assert (await self.post("/room", "direct", headers=headers)).code == 202
        assert await receive(sub) == "direct"
        batch = json.dumps({"messages": [{"channel": "room", "data": "b"}]})
        assert (await self.post("/_/publish", batch, headers=headers)).code == 202
        assert self.backend.count("publish") == 0
