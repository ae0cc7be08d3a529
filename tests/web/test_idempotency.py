"""Publishes safe to retry: Idempotency-Key on POST /<channel> and POST /_/publish (memory)."""

from __future__ import annotations

import asyncio
import json

from tornado.testing import gen_test

from tornado_channels import MemoryBroker, Node

from ..helpers import NodeAppTestCase, receive, silent


class IdempotencyTest(NodeAppTestCase):
    """An app on the embedded broker, with a subscriber to count deliveries."""

    def make_node(self) -> Node:
        self.broker = MemoryBroker(idempotency_ttl=0.5)
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
        await silent(ws)

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
        await silent(ws)

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
        await silent(ws)

    @gen_test
    async def test_a_malformed_key_is_a_400_and_publishes_nothing(self) -> None:
        """A key that is empty, too long or not visible ASCII is refused before the body."""
        ws = await self.ws("/a")
        for key in ("", "x" * 256, "with space", "caf\u00e9".encode().decode("latin-1")):
            response = await self.post("/a", b"x", headers={"Idempotency-Key": key})
            self.assertEqual(response.code, 400, key)
            self.assertEqual(json.loads(response.body)["error"], "invalid_idempotency_key")
        await silent(ws)

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
        await silent(ws)

    @gen_test
    async def test_keys_are_forgotten_after_their_ttl(self) -> None:
        """Past --idempotency-ttl the key is gone: memory stays bounded, and it publishes again."""
        ws = await self.ws("/a")
        for number in range(50):
            await self.post("/a", b"x", headers={"Idempotency-Key": f"k{number}"})
        self.assertEqual(self.broker.idempotency_keys(), 50)
        await asyncio.sleep(0.6)
        again = await self.post("/a", b"x", headers={"Idempotency-Key": "k0"})
        self.assertNotIn("Idempotent-Replayed", again.headers)
        self.assertEqual(self.broker.idempotency_keys(), 1)
        for _ in range(51):
            self.assertEqual(await receive(ws), "x")
