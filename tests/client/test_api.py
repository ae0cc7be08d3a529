"""The client's pure parts: requests built, answers and errors read, the retry policy."""

from __future__ import annotations

import json

import pytest

from tornado_channels.client import api
from tornado_channels.client.errors import (
    BadRequest,
    BrokerUnavailable,
    ChannelError,
    ConnectionFailed,
    Forbidden,
    IdempotencyKeyReused,
    MessageTooLarge,
    PublishOutcomeUnknown,
    ServerError,
    Unauthorized,
    refusal,
)
from tornado_channels.client.retry import NO_RETRY, Retry, retryable


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "invalid_channel", ChannelError),
        (400, "invalid_batch", BadRequest),
        (401, "unauthorized", Unauthorized),
        (403, "forbidden", Forbidden),
        (413, "message_too_large", MessageTooLarge),
        (413, "batch_too_large", MessageTooLarge),
        (422, "idempotency_key_reused", IdempotencyKeyReused),
        (503, "broker_unavailable", BrokerUnavailable),
        (504, "publish_outcome_unknown", PublishOutcomeUnknown),
        (500, "internal_error", ServerError),
    ],
)
def test_each_error_code_is_raised_as_its_own_type(status: int, code: str, kind: type) -> None:
    """An error body's code picks the exception, which keeps the status, code, message and body."""
    body = json.dumps({"error": code, "message": "why", "index": 2}).encode()
    error = refusal(status, body, "1")
    assert type(error) is kind
    assert (error.status, error.error, error.message, error.body["index"]) == (
        status,
        code,
        "why",
        2,
    )
    assert error.retry_after == 1.0


def test_an_answer_that_is_not_json_is_kept_as_text() -> None:
    """A proxy's HTML 502 becomes a ServerError that quotes it."""
    error = refusal(502, b"<html>Bad Gateway</html>")
    assert isinstance(error, ServerError)
    assert error.error == "http_502"
    assert "Bad Gateway" in error.message


def test_targets_are_percent_encoded_and_dot_segments_kept_for_the_server() -> None:
    """Paths are encoded by segment; '.' and '..' reach the server instead of being resolved."""
    assert api.target_path("/live", "café/1") == "/live/caf%C3%A9/1"
    assert api.target_path("", "users/") == "/users/"
    assert api.target_path("", "/") == "/"
    assert api.target_path("", "a/../b") == "/a/%2E%2E/b"


def test_a_batch_sends_text_as_data_and_other_bytes_as_base64() -> None:
    """Text (and JSON-able values) go as data; bytes that are not UTF-8 as data_base64."""
    request = api.publish_many(
        "", [("a", "hi"), ("b", b"\xff\x00"), ("c", {"n": 1})], key="k", idempotency_key="i"
    )
    assert json.loads(request.body)["messages"] == [
        {"channel": "a", "data": "hi"},
        {"channel": "b", "data_base64": "/wA="},
        {"channel": "c", "data": '{"n":1}'},
    ]
    assert request.headers["Authorization"] == "Bearer k"
    assert request.headers["Idempotency-Key"] == "i"
    assert request.keyed


def test_delays_grow_to_the_cap_and_follow_retry_after() -> None:
    """Backoff doubles up to its cap; a 503's Retry-After is waited for, within the cap."""
    policy = Retry(attempts=6, backoff=0.1, cap=1.0)
    assert list(policy.delays()) == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    unavailable = BrokerUnavailable(503, "broker_unavailable", "", retry_after=0.5)
    assert all(0.5 <= policy.delay(0.1, unavailable) <= 1.0 for _ in range(50))
    assert all(0 <= policy.delay(0.2, ConnectionFailed("", sent=False)) <= 0.2 for _ in range(50))
    assert list(NO_RETRY.delays()) == []


def test_only_failures_that_cannot_publish_twice_are_retried() -> None:
    """503 and unsent requests always; a broken connection or a 504 only with a key; 4xx never."""
    unknown = PublishOutcomeUnknown(504, "publish_outcome_unknown", "")
    broken = ConnectionFailed("", sent=True)
    assert retryable(BrokerUnavailable(503, "broker_unavailable", ""), keyed=False)
    assert retryable(ConnectionFailed("", sent=False), keyed=False)
    assert not retryable(broken, keyed=False)
    assert retryable(broken, keyed=True)
    assert not retryable(unknown, keyed=False)
    assert retryable(unknown, keyed=True)
    assert not retryable(MessageTooLarge(413, "message_too_large", ""), keyed=True)
