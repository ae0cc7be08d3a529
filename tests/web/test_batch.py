"""Batch publishing: ``POST /_/publish`` with many channel-message pairs, all or none."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tornado.httpclient import HTTPResponse
from tornado.httputil import HTTPServerRequest
from tornado.testing import gen_test
from tornado.web import Application

from tornado_channels import ChannelHooks, Node, make_app
from tornado_channels.core.batch import InvalidBatch, parse_batch
from tornado_channels.core.channels import Channel, Subtree, Target

from ..helpers import NodeAppTestCase, ServerProcess, receive


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
        # Past what Python's decoder takes: nesting, and its int-string conversion limit.
        (b"[" * 5000, "invalid_batch", None),
        (b'{"a": ' * 3000, "invalid_batch", None),
        (b'{"a": ' * 3000 + b"1" + b"}" * 3000, "invalid_batch", None),
        (b"9" * 5000, "invalid_batch", None),
        (b'{"messages": [{"channel": "a", "data": ' + b"9" * 5000 + b"}]}", "invalid_batch", 0),
        (b'{"messages": [{"channel": ' + b"1" * 5000 + b', "data": "x"}]}', "invalid_batch", 0),
    ],
)
def test_a_bad_body_is_refused_naming_the_entry(body: bytes, error: str, index: int | None):
    """Each malformed body or entry is refused with an error code and the entry's index."""
    with pytest.raises(InvalidBatch) as caught:
        parse_batch(body, max_messages=10, max_message_size=16)
    assert (caught.value.error, caught.value.index, caught.value.too_large) == (error, index, False)
    assert str(caught.value)


def test_numbers_anywhere_else_are_ignored_unread():
    """A field the batch does not use may hold any number, even 5000 digits; the batch is fine."""
    body = b'{"n": 1e999, "messages": [{"channel": "a", "data": "x", "n": ' + b"9" * 5000 + b"}]}"
    assert parse_batch(body, max_messages=10, max_message_size=16) == [(Channel("a"), b"x")]


# Bodies of every kind a client may send: arbitrary bytes, arbitrary JSON, batch-shaped
# JSON with arbitrary entries, nesting past any stack, numbers past any conversion limit.
_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
_entries = st.fixed_dictionaries(
    {},
    optional={
        "channel": st.text(max_size=20) | _json_values,
        "data": st.text(max_size=20) | _json_values,
        "data_base64": st.text(max_size=20) | _json_values,
    },
)


def _nested(depth: int, opener: str, closed: bool) -> bytes:
    closer = {"[": "]", '{"a": ': "}"}[opener]
    return (opener * depth + ("0" + closer * depth if closed else "")).encode()


BODIES = st.one_of(
    st.binary(max_size=300),
    _json_values.map(lambda value: json.dumps(value).encode()),
    st.lists(_entries | _json_values, max_size=5).map(
        lambda entries: json.dumps({"messages": entries}).encode()
    ),
    st.builds(_nested, st.integers(500, 6000), st.sampled_from(["[", '{"a": ']), st.booleans()),
    st.builds(
        lambda digits, wrapped: (
            b'{"messages": [{"channel": "a", "data": "x", "n": %s}]}' % digits
            if wrapped
            else digits
        ),
        st.integers(4000, 20000).map(lambda n: b"9" * n),
        st.booleans(),
    ),
)


@given(BODIES)
@settings(deadline=None)
def test_any_body_is_parsed_or_refused_as_invalid(body: bytes) -> None:
    """Whatever the body, parse_batch returns pairs or raises InvalidBatch: nothing else."""
    refusal = None
    try:
        pairs = parse_batch(body, max_messages=10, max_message_size=16)
    except InvalidBatch as exc:
        refusal, pairs = exc, []
    assert all(isinstance(payload, bytes) for _, payload in pairs)
    if refusal is not None:
        kinds = ("invalid_batch", "invalid_channel", "batch_too_large", "message_too_large")
        assert refusal.error in kinds
        assert str(refusal)


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
        await self.quiet(one)

    @gen_test
    async def test_one_bad_entry_publishes_nothing(self) -> None:
        """A batch with one invalid channel is refused with 400 and its index; nothing is sent."""
        ws = await self.ws("/room/1")
        response = await self.post_batch(batch(("room/1", "fine"), ("bad%2Fname", "x")))
        self.assertEqual(response.code, 400)
        self.assertEqual(json.loads(response.body)["error"], "invalid_channel")
        self.assertEqual(json.loads(response.body)["index"], 1)
        await self.quiet(ws)

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
        await self.quiet(ws)
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


# --- A real server, fed generated bodies ------------------------------------------

Start = Callable[..., ServerProcess]


@pytest.fixture
def fed_server(servers: Start) -> Iterator[httpx.Client]:
    """A client of one real process on the embedded broker; its log holds no failure after."""
    server = servers("--max-batch-messages", "10", "--max-message-size", "1000")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client
    # Checked once, after every example: a failure would show as a 500 first.
    output = server.output()
    assert "Traceback" not in output, output[-3000:]
    assert " ERROR " not in output, output[-3000:]


#: Enough examples to meet each kind of body several times, few enough for a fast suite.
FED = settings(
    max_examples=200,
    deadline=None,
    # One server for every example, on purpose: starting one per example would take minutes.
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.mark.processes
@given(body=BODIES)
@FED
def test_no_batch_body_makes_a_real_server_fail(fed_server: httpx.Client, body: bytes) -> None:
    """POST /_/publish answers every generated body 202, 400 or 413 in JSON, never a 500."""
    response = fed_server.post("/_/publish", content=body)
    assert response.status_code in (202, 400, 413), (response.status_code, response.text)
    answer = response.json()
    if response.status_code != 202:
        assert answer["error"], answer
        assert answer["message"], answer


@pytest.mark.processes
@given(
    path=st.text(max_size=30).map(lambda text: quote(text, safe="/")),
    body=st.binary(max_size=2000),
    content_type=st.sampled_from(["application/json", "text/plain", "", "\u00e9/\u00e9"]),
)
@FED
def test_no_single_publish_makes_a_real_server_fail(
    fed_server: httpx.Client, path: str, body: bytes, content_type: str
) -> None:
    """POST /<channel> with any path, body and Content-Type is answered in JSON, never a 5xx."""
    headers = {"Content-Type": content_type.encode()}  # raw UTF-8 bytes, for the last
    response = fed_server.post(f"/fuzz/{path}", content=body, headers=headers)
    assert response.status_code in (202, 400, 413), (response.status_code, response.text)
    assert response.json()
