"""Batch publishing: ``POST /_/publish`` with many channel-message pairs, all or none."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse
from tornado.httputil import HTTPServerRequest
from tornado.testing import gen_test
from tornado.web import Application

from tornado_channels import ChannelHooks, Node, make_app
from tornado_channels.core.batch import InvalidBatch, parse_batch
from tornado_channels.core.channels import Channel, Subtree, Target

from ..helpers import NodeAppTestCase, receive, silent


def parse(document: Any, **limits: int) -> list[tuple[Target, bytes]]:
    options = {"max_messages": 10, "max_message_size": 16, **limits}
    return parse_batch(json.dumps(document).encode(), **options)


# --- The body, without a server -------------------------------------------------


def test_entries_become_targets_and_payloads_in_order():
    """Text, base64, a leading slash, a percent-escape and a subtree all parse, in order."""
    assert parse(
        {
            "messages": [
                {"channel": "users/1", "data": "héllo"},
                {"channel": "/users/2", "data_base64": base64.b64encode(b"\xff\x00").decode()},
                {"channel": "users/", "data": "all"},
                {"channel": "a%20b", "data": ""},
            ]
        }
    ) == [
        (Channel("users/1"), "héllo".encode()),
        (Channel("users/2"), b"\xff\x00"),
        (Subtree("users"), b"all"),
        (Channel("a b"), b""),
    ]


@pytest.mark.parametrize(
    ("body", "error", "index"),
    [
        (b"not json", "invalid_batch", None),
        (b"\xff", "invalid_batch", None),
        (b"[]", "invalid_batch", None),
        (b'{"messages": {}}', "invalid_batch", None),
        (b'{"messages": [1]}', "invalid_batch", 0),
        (b'{"messages": [{"data": "x"}]}', "invalid_batch", 0),
        (
            b'{"messages": [{"channel": "a", "data": "x"}, {"channel": 1, "data": "x"}]}',
            "invalid_batch",
            1,
        ),
        (b'{"messages": [{"channel": "a%2Fb", "data": "x"}]}', "invalid_channel", 0),
        (b'{"messages": [{"channel": "_/health", "data": "x"}]}', "invalid_channel", 0),
        (b'{"messages": [{"channel": "a"}]}', "invalid_batch", 0),
        (
            b'{"messages": [{"channel": "a", "data": "x", "data_base64": "eA=="}]}',
            "invalid_batch",
            0,
        ),
        (b'{"messages": [{"channel": "a", "data": 5}]}', "invalid_batch", 0),
        (b'{"messages": [{"channel": "a", "data_base64": "not base64!"}]}', "invalid_batch", 0),
        (b'{"messages": [{"channel": "a", "data": "\\ud800"}]}', "invalid_batch", 0),
    ],
)
def test_a_bad_body_is_refused_naming_the_entry(body: bytes, error: str, index: int | None):
    """Each malformed body or entry is refused with an error code and the entry's index."""
    with pytest.raises(InvalidBatch) as caught:
        parse_batch(body, max_messages=10, max_message_size=16)
    assert (caught.value.error, caught.value.index, caught.value.too_large) == (error, index, False)
    assert str(caught.value)


def test_too_many_messages_or_too_large_a_message_is_a_size_refusal():
    """Past max_messages, or a payload past max_message_size, is refused as too large."""
    with pytest.raises(InvalidBatch) as many:
        parse({"messages": [{"channel": "a", "data": "x"}] * 3}, max_messages=2)
    assert (many.value.error, many.value.too_large) == ("batch_too_large", True)
    with pytest.raises(InvalidBatch) as large:
        parse({"messages": [{"channel": "a", "data": "x"}, {"channel": "a", "data": "x" * 17}]})
    assert (large.value.error, large.value.index, large.value.too_large) == (
        "message_too_large",
        1,
        True,
    )


# --- The endpoint -----------------------------------------------------------------


def batch(*pairs: tuple[str, str]) -> bytes:
    return json.dumps({"messages": [{"channel": c, "data": d} for c, d in pairs]}).encode()


class BatchTestCase(NodeAppTestCase):
    async def post_batch(self, body: bytes, **kwargs: Any) -> HTTPResponse:
        return await self.post("/_/publish", body, **kwargs)


class BatchPublishTest(BatchTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, max_batch_messages=5, max_batch_bytes=2000)

    @gen_test
    async def test_a_batch_reaches_every_channel_in_order(self) -> None:
        """One request publishes to several channels and a subtree; each arrives in order."""
        one, two = await self.ws("/room/1"), await self.ws("/room/2")
        response = await self.post_batch(
            batch(("room/1", "a"), ("room/2", "b"), ("room/", "everyone"), ("room/1", "c"))
        )
        self.assertEqual(response.code, 202)
        answer = json.loads(response.body)
        self.assertEqual(answer["published"], 4)
        seqs = [int(p.split(":")[1]) for p in answer["positions"]]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + 4)))
        self.assertEqual([await receive(one) for _ in range(3)], ["a", "everyone", "c"])
        self.assertEqual([await receive(two) for _ in range(2)], ["b", "everyone"])
        await silent(one)

    @gen_test
    async def test_one_bad_entry_publishes_nothing(self) -> None:
        """A batch with one invalid channel is refused with 400 and its index; nothing is sent."""
        ws = await self.ws("/room/1")
        response = await self.post_batch(batch(("room/1", "fine"), ("bad%2Fname", "x")))
        self.assertEqual(response.code, 400)
        self.assertEqual(json.loads(response.body)["error"], "invalid_channel")
        self.assertEqual(json.loads(response.body)["index"], 1)
        await silent(ws)

    @gen_test
    async def test_size_limits_answer_413(self) -> None:
        """Too many messages, or a body past max_batch_bytes, is 413 batch_too_large."""
        many = await self.post_batch(batch(*[("a", "x")] * 6))
        self.assertEqual((many.code, json.loads(many.body)["error"]), (413, "batch_too_large"))
        large = await self.post_batch(batch(("a", "x" * 2000)))
        self.assertEqual((large.code, json.loads(large.body)["error"]), (413, "batch_too_large"))

    @gen_test
    async def test_an_empty_batch_publishes_nothing(self) -> None:
        """An empty messages list is accepted and publishes nothing."""
        response = await self.post_batch(b'{"messages": []}')
        self.assertEqual(response.code, 202)
        self.assertEqual(json.loads(response.body), {"published": 0, "positions": []})

    @gen_test
    async def test_only_post_is_allowed(self) -> None:
        """GET /_/publish is 405 with a JSON body."""
        response = await self.http_client.fetch(self.get_url("/_/publish"), raise_error=False)
        self.assertEqual(response.code, 405)
        self.assertIn("error", json.loads(response.body))


class RefusingHooks(ChannelHooks):
    def authorize_publish(self, request: HTTPServerRequest, target: Target) -> bool:
        return str(target) != "secret"


class BatchAuthorizationTest(BatchTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, hooks=RefusingHooks(), publish_key="k3y")

    @gen_test
    async def test_the_publish_key_is_required(self) -> None:
        """Without the publish key a batch gets 401, with a wrong one 403."""
        body = batch(("open", "x"))
        self.assertEqual((await self.post_batch(body)).code, 401)
        wrong = await self.post_batch(body, headers={"Authorization": "Bearer nope"})
        self.assertEqual(wrong.code, 403)

    @gen_test
    async def test_a_refused_target_refuses_the_whole_batch(self) -> None:
        """The publish hook is asked for every target; one refusal is 403 and nothing is sent."""
        ws = await self.ws("/open")
        response = await self.post_batch(
            batch(("open", "x"), ("secret", "y")), headers={"Authorization": "Bearer k3y"}
        )
        self.assertEqual(response.code, 403)
        self.assertEqual(json.loads(response.body)["error"], "forbidden")
        await silent(ws)
        allowed = await self.post_batch(
            batch(("open", "x")), headers={"Authorization": "Bearer k3y"}
        )
        self.assertEqual(allowed.code, 202)
        self.assertEqual(await receive(ws), "x")


class StoppedBrokerTest(BatchTestCase):
    @gen_test
    async def test_a_batch_the_broker_cannot_take_is_503(self) -> None:
        """With the broker stopped, a batch gets 503 broker_unavailable."""
        await self.node.broker.stop()
        response = await self.post_batch(batch(("a", "x")))
        self.assertEqual(response.code, 503)
        self.assertEqual(json.loads(response.body)["error"], "broker_unavailable")
