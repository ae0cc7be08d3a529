"""What a publish is answered: its JSON, the one writer, the access log, broker refusals."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

import pytest
import tornado.web

from tornado_channels.brokers.base import (
    BrokerUnavailable,
    IdempotencyConflict,
    PublishError,
    PublishOutcomeUnknown,
)
from tornado_channels.core.channels import Channel, Subtree
from tornado_channels.core.publication import Position
from tornado_channels.web.errors import JSON_TYPE, ApiError
from tornado_channels.web.publish_answer import (
    broker_refusal,
    dropped,
    log_access,
    published,
    published_batch,
    write,
)
from tornado_channels.web.server_connection import ProtocolFactory, ServerConnection


class Connection(ServerConnection):
    """A connection that keeps the answers written to it."""

    def __init__(self, lingers: bool = False) -> None:
        self._lingers = lingers
        self.answers: list[tuple[int, str, dict[str, str], bytes | None]] = []

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        raise AssertionError("no loop needed")

    @property
    def lingers(self) -> bool:
        return self._lingers

    @property
    def remote_ip(self) -> str:
        return "192.0.2.7"

    def write_answer(
        self, code: int, reason: str, fields: Mapping[str, str], body: bytes | None
    ) -> None:
        self.answers.append((code, reason, dict(fields), body))

    def buffered_bytes(self) -> int:
        return 0

    async def take_over(
        self, handler: tornado.web.RequestHandler, factory: ProtocolFactory
    ) -> None:
        raise AssertionError("no take-over")


def encoded(document: Mapping[str, object]) -> bytes:
    connection = Connection()
    write(connection, "POST", 202, document, None, False)
    body = connection.answers[0][3]
    assert body is not None
    return body


def test_a_published_message_is_answered_as_before() -> None:
    """The 202 of one message is byte for byte the JSON it always was, escapes included."""
    position = Position("ab12", 7)
    assert encoded(published(Channel("a"), 5, position)) == (
        b'{"published": true, "channel": "a", "bytes": 5, "position": "ab12:7"}'
    )
    assert encoded(published(Subtree("users"), 0, position)) == (
        b'{"published": true, "subtree": "users/", "bytes": 0, "position": "ab12:7"}'
    )
    assert encoded(published(Channel('caf\u00e9"'), 1, position)) == (
        b'{"published": true, "channel": "caf\\u00e9\\"", "bytes": 1, "position": "ab12:7"}'
    )


def test_a_dropped_message_says_so() -> None:
    """The on_publish hook's drop is answered published false, dropped true, and the target."""
    assert encoded(dropped(Channel("a"))) == (
        b'{"published": false, "dropped": true, "channel": "a"}'
    )
    assert encoded(dropped(Subtree(""))) == b'{"published": false, "dropped": true, "subtree": "/"}'


def test_a_batch_is_answered_with_its_count_and_positions() -> None:
    """The batch's 202 counts its messages and lists their positions in order."""
    assert encoded(published_batch([])) == b'{"published": 0, "positions": []}'
    positions = [Position("e", 1), Position("e", 2)]
    assert encoded(published_batch(positions)) == (b'{"published": 2, "positions": ["e:1", "e:2"]}')


def test_the_answer_carries_its_fields_and_the_callers() -> None:
    """Status, reason, JSON type, length, date, no-store, then the given headers; nothing else."""
    connection = Connection()
    write(connection, "POST", 401, {"error": "x"}, {"WWW-Authenticate": "Bearer"}, False)
    [(code, reason, fields, body)] = connection.answers
    assert (code, reason, body) == (401, "Unauthorized", b'{"error": "x"}')
    assert fields.pop("Date").endswith(" GMT")
    assert fields == {
        "Content-Type": JSON_TYPE,
        "Content-Length": "14",
        "Cache-Control": "no-store",
        "WWW-Authenticate": "Bearer",
    }


def test_a_head_answer_has_the_fields_and_no_body() -> None:
    """HEAD gets the Content-Length the body would have, and no body."""
    connection = Connection()
    write(connection, "HEAD", 405, {"error": "x"}, None, False)
    [(code, _, fields, body)] = connection.answers
    assert (code, body, fields["Content-Length"]) == (405, None, "14")


def test_an_answer_mid_body_closes_a_connection_that_does_not_linger() -> None:
    """Connection: close only when the body is still coming and the server will not read it."""
    for lingers, mid_body, closes in (
        (False, True, True),
        (False, False, False),
        (True, True, False),
    ):
        connection = Connection(lingers)
        write(connection, "POST", 403, {"error": "x"}, None, mid_body)
        fields = connection.answers[0][2]
        assert (fields.get("Connection") == "close") is closes


def test_the_access_log_line_hides_tokens_and_grades_by_status(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """INFO under 400, WARNING under 500, ERROR above; the URI's token= value never printed."""
    started = time.monotonic()
    with caplog.at_level(logging.INFO, logger="tornado.access"):
        log_access(202, "POST", "/a?token=secret-value", Connection(), started)
        log_access(403, "POST", "/a", Connection(), started)
        log_access(503, "POST", "/a", Connection(), started)
    levels = [record.levelno for record in caplog.records]
    assert levels == [logging.INFO, logging.WARNING, logging.ERROR]
    first = caplog.records[0].getMessage()
    assert first.startswith("202 POST /a?token=")
    assert "(192.0.2.7)" in first
    assert "secret-value" not in first


def test_nothing_is_formatted_when_nothing_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Below the access log's level, the client's address is not even asked for."""

    class Unasked(Connection):
        @property
        def remote_ip(self) -> str:
            raise AssertionError("asked")

    with caplog.at_level(logging.WARNING, logger="tornado.access"):
        log_access(202, "POST", "/a", Unasked(), time.monotonic())
    assert caplog.records == []


def test_broker_refusals_are_answered_422_504_and_503() -> None:
    """A reused key is 422, an unknown outcome 504, an unavailable broker 503 with Retry-After."""
    conflict = broker_refusal(IdempotencyConflict("key k"))
    assert (conflict.status_code, conflict.error) == (422, "idempotency_key_reused")
    assert conflict.message == "key k: a retry must send the same message"
    unknown = broker_refusal(PublishOutcomeUnknown("lost"))
    assert (unknown.status_code, unknown.error, unknown.message) == (
        504,
        "publish_outcome_unknown",
        "lost",
    )
    down = broker_refusal(BrokerUnavailable("down"))
    assert (down.status_code, down.error, down.headers) == (
        503,
        "broker_unavailable",
        {"Retry-After": "1"},
    )


def test_a_broker_error_without_an_answer_is_raised() -> None:
    """Any other PublishError is a bug: raised as it is, for the 500."""
    error = PublishError("odd")
    with pytest.raises(PublishError) as caught:
        broker_refusal(error)
    assert caught.value is error
    assert not isinstance(caught.value, ApiError)
