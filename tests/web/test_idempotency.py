"""Publishes safe to retry: Idempotency-Key on POST /<channel> and POST /_/publish (memory)."""

from __future__ import annotations

import asyncio
import json
import time

import jwt
from tornado.httpclient import HTTPResponse
from tornado.testing import gen_test
from tornado.web import Application

from tornado_channels import MemoryBroker, Node, make_app

from ..helpers import NodeAppTestCase, receive
from .test_tokens import SECRET, mint

KEY = "the-backend-key"


class IdempotencyTest(NodeAppTestCase):
    """An app on the embedded broker, with a subscriber to count deliveries."""

    #: Long enough that no key expires within a test, however loaded the machine.
    TTL = 60.0

    def make_node(self) -> Node:
        self.broker = MemoryBroker(idempotency_ttl=self.TTL)
        return Node(self.broker)

    @gen_test
    async def test_the_same_key_twice_publishes_once_and_answers_the_same(self) -> None:
        """A retry with the same key gets the first answer, marked replayed; nothing new is sent."""
        ws = await self.ws("/a")
        headers = {"Idempotency-Key": "order-17"}
        first = await self.post("/a", b"paid", headers=headers)
        second = await self.post("/a", b"paid", headers=headers)
        self.assertEqual((first.code, second.code), (202, 202))
        self.assertEqual(json.loads(first.body), json.loads(second.body))
        self.assertNotIn("Idempotent-Replayed", first.headers)
        self.assertEqual(second.headers["Idempotent-Replayed"], "true")
        self.assertEqual(await receive(ws), "paid")
        await self.quiet(ws)

    @gen_test
    async def test_concurrent_retries_publish_once(self) -> None:
        """Ten POSTs with one key at once: one delivery, one position in every answer."""
        ws = await self.ws("/a")
        answers = await asyncio.gather(
            *(self.post("/a", b"once", headers={"Idempotency-Key": "k"}) for _ in range(10))
        )
        self.assertEqual({answer.code for answer in answers}, {202})
        self.assertEqual(len({json.loads(answer.body)["position"] for answer in answers}), 1)
        self.assertEqual(await receive(ws), "once")
        await self.quiet(ws)

    @gen_test
    async def test_a_key_reused_for_another_message_is_refused(self) -> None:
        """The same key with another body or channel is a 422, and publishes nothing."""
        ws = await self.ws("/a")
        await self.post("/a", b"first", headers={"Idempotency-Key": "k"})
        self.assertEqual(await receive(ws), "first")
        for path, body in (("/a", b"other"), ("/b", b"first")):
            response = await self.post(path, body, headers={"Idempotency-Key": "k"})
            self.assertEqual(response.code, 422)
            self.assertEqual(json.loads(response.body)["error"], "idempotency_key_reused")
        await self.quiet(ws)

    @gen_test
    async def test_a_malformed_key_is_a_400_and_publishes_nothing(self) -> None:
        """A key that is empty, too long or not visible ASCII is refused before the body."""
        ws = await self.ws("/a")
        for key in ("", "x" * 256, "with space", "caf\u00e9".encode().decode("latin-1")):
            response = await self.post("/a", b"x", headers={"Idempotency-Key": key})
            self.assertEqual(response.code, 400, key)
            self.assertEqual(json.loads(response.body)["error"], "invalid_idempotency_key")
        await self.quiet(ws)

    @gen_test
    async def test_a_batch_key_replays_the_whole_batch(self) -> None:
        """One key covers a batch: the retry answers every original position, delivers nothing."""
        ws = await self.ws("/a")
        body = json.dumps(
            {"messages": [{"channel": "a", "data": "1"}, {"channel": "a", "data": "2"}]}
        )
        headers = {"Idempotency-Key": "batch-1"}
        first = await self.post("/_/publish", body, headers=headers)
        second = await self.post("/_/publish", body, headers=headers)
        self.assertEqual(first.code, 202)
        self.assertEqual(json.loads(first.body), json.loads(second.body))
        self.assertEqual(second.headers["Idempotent-Replayed"], "true")
        self.assertEqual([await receive(ws), await receive(ws)], ["1", "2"])
        await self.quiet(ws)


class ForgettingTest(NodeAppTestCase):
    """Keys that expire within the test: a TTL far above what 50 local POSTs take."""

    TTL = 2.0

    def make_node(self) -> Node:
        self.broker = MemoryBroker(idempotency_ttl=self.TTL)
        return Node(self.broker)

    @gen_test
    async def test_keys_are_forgotten_after_their_ttl(self) -> None:
        """Past --idempotency-ttl the key is gone: memory stays bounded, and it publishes again."""
        ws = await self.ws("/a")
        for number in range(50):
            await self.post("/a", b"x", headers={"Idempotency-Key": f"k{number}"})
        self.assertEqual(self.broker.idempotency_keys(), 50)
        await asyncio.sleep(self.TTL + 0.2)
        again = await self.post("/a", b"x", headers={"Idempotency-Key": "k0"})
        self.assertNotIn("Idempotent-Replayed", again.headers)
        self.assertEqual(self.broker.idempotency_keys(), 1)
        for _ in range(51):
            self.assertEqual(await receive(ws), "x")


class CallerScopeTest(NodeAppTestCase):
    """Tokens and a publish key: keys are remembered per caller (a token's sub, or the key)."""

    def make_app(self, node: Node) -> Application:
        return make_app(node, token_secret=SECRET, publish_key=KEY, public=("/",))

    async def post_as(self, credential: str, body: bytes, key: str = "order-1") -> HTTPResponse:
        headers = {"Authorization": f"Bearer {credential}", "Idempotency-Key": key}
        return await self.post("/a", body, headers=headers)

    @gen_test
    async def test_another_users_guess_of_a_key_neither_replays_nor_refuses(self) -> None:
        """Others reusing u1's key publish their own (no 422, no replay); u1's retry replays."""
        ws = await self.ws("/a")
        first = await self.post_as(mint(publish=["a"], sub="u1"), b"u1 paid")
        self.assertEqual(first.code, 202)
        self.assertEqual(await receive(ws), "u1 paid")
        for sub, body in (("u2", b"u2 other"), ("u3", b"u1 paid")):
            with self.subTest(sub=sub):
                guess = await self.post_as(mint(publish=["a"], sub=sub), body)
                self.assertEqual(guess.code, 202)
                self.assertNotIn("Idempotent-Replayed", guess.headers)
                self.assertNotEqual(
                    json.loads(guess.body)["position"], json.loads(first.body)["position"]
                )
                self.assertEqual(await receive(ws), body.decode())
        # u1 again, with a renewed token (same sub): its own first answer, nothing new.
        retry = await self.post_as(mint(publish=["a"], sub="u1", ttl=120), b"u1 paid")
        self.assertEqual(retry.headers["Idempotent-Replayed"], "true")
        self.assertEqual(json.loads(retry.body), json.loads(first.body))
        reused = await self.post_as(mint(publish=["a"], sub="u1"), b"u1 refunded")
        self.assertEqual(reused.code, 422)
        await self.quiet(ws)

    @gen_test
    async def test_the_key_holder_and_token_users_are_apart(self) -> None:
        """The backend's key and a user's token with the same Idempotency-Key publish apart."""
        ws = await self.ws("/a")
        backend = await self.post_as(KEY, b"from the backend")
        user = await self.post_as(mint(publish=["a"], sub="u1"), b"from a user")
        self.assertEqual((backend.code, user.code), (202, 202))
        got = [await receive(ws), await receive(ws)]
        self.assertEqual(got, ["from the backend", "from a user"])
        again = await self.post_as(KEY, b"from the backend")
        self.assertEqual(json.loads(again.body), json.loads(backend.body))
        self.assertEqual(again.headers["Idempotent-Replayed"], "true")
        await self.quiet(ws)

    @gen_test
    async def test_a_token_without_sub_is_its_own_caller(self) -> None:
        """Two tokens with no sub and one key publish apart; the same token's retry replays."""
        ws = await self.ws("/a")
        now = int(time.time())
        one, two = (
            jwt.encode({"exp": now + 60 + n, "publish": ["a"]}, SECRET, algorithm="HS256")
            for n in (0, 1)
        )
        first = await self.post_as(one, b"one")
        self.assertEqual((await self.post_as(two, b"two")).code, 202)
        self.assertEqual([await receive(ws), await receive(ws)], ["one", "two"])
        retry = await self.post_as(one, b"one")
        self.assertEqual(retry.headers["Idempotent-Replayed"], "true")
        self.assertEqual(json.loads(retry.body), json.loads(first.body))
        await self.quiet(ws)

    @gen_test
    async def test_a_batch_key_is_scoped_too(self) -> None:
        """POST /_/publish: another user's batch under the same key is published, not refused."""
        ws = await self.ws("/a")
        body = json.dumps({"messages": [{"channel": "a", "data": "batch"}]})
        for sub in ("u1", "u2"):
            headers = {
                "Authorization": f"Bearer {mint(publish=['a'], sub=sub)}",
                "Idempotency-Key": "batch-1",
            }
            answer = await self.post("/_/publish", body, headers=headers)
            self.assertEqual(answer.code, 202)
            self.assertNotIn("Idempotent-Replayed", answer.headers)
            self.assertEqual(await receive(ws), "batch")
        await self.quiet(ws)
