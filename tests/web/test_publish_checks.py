"""The checks of a publish's head, called directly with plain header dicts (no server, no loop)."""

from __future__ import annotations

import time

import jwt
import pytest
from tornado.httputil import HTTPHeaders, HTTPServerRequest, RequestStartLine

from tornado_channels.core.channels import Channel, Subtree
from tornado_channels.web.config import ChannelConfig
from tornado_channels.web.errors import ApiError
from tornado_channels.web.publish_body import DISCARD_LIMIT
from tornado_channels.web.publish_checks import (
    ANONYMOUS,
    KEYED,
    batch_of,
    check_method,
    check_origin,
    check_size,
    credentials,
    has_body,
    idempotency_key,
    must_answer_now,
    target_of,
    too_large,
)
from tornado_channels.web.tokens import Guard, TokenVerifier, claims_of

SECRET = "a-test-secret-that-is-at-least-32-bytes-long"
KEY = "the-publish-key"
TOKENS = Guard(TokenVerifier([SECRET]))
NO_TOKENS = Guard(None)


def token(publish: list[str], **claims: object) -> str:
    return jwt.encode(
        {"sub": "u42", "exp": time.time() + 60, "publish": publish, **claims}, SECRET, "HS256"
    )


class Requests:
    """A request factory that counts the requests it builds."""

    def __init__(self) -> None:
        self.built: list[HTTPServerRequest] = []

    def __call__(self) -> HTTPServerRequest:
        start_line = RequestStartLine("POST", "/a", "HTTP/1.1")
        request = HTTPServerRequest(start_line=start_line, headers=HTTPHeaders({"Host": "h"}))
        self.built.append(request)
        return request


def refusal(call: object, *args: object) -> ApiError:
    assert callable(call)
    with pytest.raises(ApiError) as caught:
        call(*args)
    return caught.value


def test_only_post_publishes() -> None:
    """POST passes; any other method is a 405 that names POST in Allow."""
    check_method("POST")
    for method in ("GET", "HEAD", "PUT", "post"):
        exc = refusal(check_method, method)
        assert (exc.status_code, exc.error) == (405, "method_not_allowed")
        assert exc.headers == {"Allow": "POST"}
        assert method in exc.message


def test_the_path_names_a_channel_or_a_subtree_or_is_refused() -> None:
    """A name is a Channel, a trailing slash a Subtree; a reserved or bad name a 400."""
    assert target_of("users/1") == Channel("users/1")
    assert target_of("users/") == Subtree("users")
    for bad in ("_/publish", "%5F/x", "a//b"):
        exc = refusal(target_of, bad)
        assert (exc.status_code, exc.error) == (400, "invalid_channel")


def test_nothing_configured_lets_anyone_publish() -> None:
    """With no key and no tokens, a request without credentials is the anonymous caller."""
    requests = Requests()
    assert credentials({}, "/a", None, NO_TOKENS, requests) is ANONYMOUS
    assert requests.built == []


def test_the_publish_key_is_the_trusted_caller() -> None:
    """Bearer <key> is keyed, with no claims, no caller, and no request built for it."""
    requests = Requests()
    headers = {"authorization": f"Bearer {KEY}"}
    for guard in (NO_TOKENS, TOKENS):
        found = credentials(headers, "/a", KEY, guard, requests)
        assert found is KEYED
        assert (found.keyed, found.claims, found.caller) == (True, None, None)
    assert requests.built == []


def test_a_wrong_key_is_forbidden() -> None:
    """A Bearer credential that is neither the key nor a JWT is a 403."""
    headers = {"authorization": "Bearer not-the-key"}
    for guard in (NO_TOKENS, TOKENS):
        exc = refusal(credentials, headers, "/a", KEY, guard, Requests())
        assert (exc.status_code, exc.error, exc.message) == (403, "forbidden", "wrong publish key")


def test_no_credential_where_one_is_configured_is_unauthorized() -> None:
    """Without the key or a token, a 401 says what would do, with a Bearer challenge."""
    for key, guard, needs in (
        (KEY, NO_TOKENS, ["Authorization: Bearer <key>"]),
        (None, TOKENS, ["a token with a publish grant"]),
        (KEY, TOKENS, ["Authorization: Bearer <key>", " or a token with a publish grant"]),
    ):
        exc = refusal(credentials, {}, "/a", key, guard, Requests())
        assert (exc.status_code, exc.error) == (401, "unauthorized")
        assert exc.headers == {"WWW-Authenticate": 'Bearer realm="publish"'}
        for need in needs:
            assert need in exc.message


def test_a_token_gives_its_claims_and_its_caller_and_keeps_them_on_the_request() -> None:
    """A Bearer JWT is verified on the one request built: unkeyed, its claims, caller sub:<id>."""
    requests = Requests()
    minted = token(["a"])
    found = credentials({"authorization": f"Bearer {minted}"}, "/a", KEY, TOKENS, requests)
    assert found.keyed is False
    assert found.caller == "sub:u42"
    assert found.claims is not None
    assert found.claims.publish.allows(Channel("a"))
    assert not found.claims.publish.allows(Channel("b"))
    assert len(requests.built) == 1
    assert claims_of(requests.built[0]) == found.claims


def test_the_query_token_comes_before_the_header() -> None:
    """?token= is the one verified when both are sent, as tokens.token_of reads them."""
    query, header = token(["from-query"]), token(["from-header"])
    found = credentials(
        {"authorization": f"Bearer {header}"}, f"/a?token={query}", None, TOKENS, Requests()
    )
    assert found.claims is not None
    assert found.claims.publish.allows(Channel("from-query"))
    assert not found.claims.publish.allows(Channel("from-header"))


def test_a_token_without_a_subject_is_its_own_caller() -> None:
    """No sub: the caller is the token itself, tagged, so no subject can pass for it."""
    minted = jwt.encode({"exp": time.time() + 60, "publish": ["a"]}, SECRET, "HS256")
    found = credentials({}, f"/a?token={minted}", None, TOKENS, Requests())
    assert found.caller == f"token:{minted}"


def test_a_bad_token_is_refused() -> None:
    """A token signed with another secret is a 401 invalid_token, not the anonymous caller."""
    forged = jwt.encode({"sub": "x", "exp": time.time() + 60}, "x" * 40, "HS256")
    exc = refusal(credentials, {}, f"/a?token={forged}", None, TOKENS, Requests())
    assert (exc.status_code, exc.error) == (401, "invalid_token")


def test_cross_site_posts_need_a_trusted_origin() -> None:
    """A cross-site browser POST is a 403 naming its origin, unless the origin is trusted."""
    headers = {"origin": "https://evil.example", "sec-fetch-site": "cross-site", "host": "h"}
    exc = refusal(check_origin, headers, ())
    assert (exc.status_code, exc.error) == (403, "forbidden")
    assert "'https://evil.example'" in exc.message
    check_origin(headers, ("https://evil.example",))
    check_origin({"host": "h"}, ())  # Not a browser.
    check_origin({"origin": "http://h", "host": "h"}, ())  # The page's own origin.


def test_the_idempotency_key_is_read_or_refused() -> None:
    """No header is None, a valid key is itself, a malformed one a 400."""
    assert idempotency_key({}) is None
    assert idempotency_key({"idempotency-key": "order-17"}) == "order-17"
    exc = refusal(idempotency_key, {"idempotency-key": "has space"})
    assert (exc.status_code, exc.error) == (400, "invalid_idempotency_key")


def test_a_declared_size_past_the_limit_is_too_large() -> None:
    """Content-Length over the limit is the 413 of a message or a batch; at it, or none, passes."""
    check_size({"content-length": "10"}, 10, False)
    check_size({}, 10, False)
    check_size({"content-length": "junk"}, 10, False)  # Tornado's framing refuses it.
    exc = refusal(check_size, {"content-length": "11"}, 10, False)
    assert (exc.status_code, exc.error) == (413, "message_too_large")
    assert exc.message == "the body exceeds the maximum message size of 10 bytes"
    exc = refusal(check_size, {"content-length": "11"}, 10, True)
    assert (exc.status_code, exc.error) == (413, "batch_too_large")
    assert exc.message == "the body exceeds the batch limit of 10 bytes"


def test_too_large_names_the_limit() -> None:
    """The 413 for a chunked body past the limit is the same one a declared size gets."""
    exc = too_large(5, False)
    assert (exc.status_code, exc.error, exc.message) == (
        413,
        "message_too_large",
        "the body exceeds the maximum message size of 5 bytes",
    )


def test_a_body_is_declared_by_a_length_or_chunks() -> None:
    """A non-zero Content-Length or any Transfer-Encoding declares a body; nothing or 0 does not."""
    assert has_body({"content-length": "3"})
    assert has_body({"transfer-encoding": "chunked"})
    assert not has_body({})
    assert not has_body({"content-length": "0"})


def test_when_a_refusal_is_answered_before_the_body() -> None:
    """At once on a lingering connection, for 100-continue or past DISCARD_LIMIT; else after."""
    big = {"content-length": str(DISCARD_LIMIT + 1)}
    small = {"content-length": "100"}
    assert must_answer_now({}, True)
    assert must_answer_now(small, True)
    assert not must_answer_now({}, False)
    assert not must_answer_now(small, False)
    assert must_answer_now(big, False)
    assert not must_answer_now({"content-length": str(DISCARD_LIMIT)}, False)
    assert must_answer_now({**small, "expect": "100-Continue"}, False)
    assert not must_answer_now({"transfer-encoding": "chunked"}, False)
    assert must_answer_now({"content-length": "1, 2"}, False)


def test_a_batch_is_checked_whole() -> None:
    """A good batch gives its messages in order; a bad entry is a 400 naming it, too many a 413."""
    config = ChannelConfig(max_batch_messages=2, max_message_size=3)
    good = b'{"messages": [{"channel": "a", "data": "hi"}, {"channel": "b/", "data": "yo"}]}'
    assert batch_of(good, config) == [(Channel("a"), b"hi"), (Subtree("b"), b"yo")]
    bad = b'{"messages": [{"channel": "a", "data": "hi"}, {"channel": "_/x", "data": "yo"}]}'
    exc = refusal(batch_of, bad, config)
    assert (exc.status_code, exc.error, exc.details) == (400, "invalid_channel", {"index": 1})
    exc = refusal(batch_of, b"not json", config)
    assert (exc.status_code, exc.error, exc.details) == (400, "invalid_batch", {})
    many = b'{"messages": [{"channel": "a", "data": ""}, {"channel": "a", "data": ""}, {}]}'
    exc = refusal(batch_of, many, config)
    assert (exc.status_code, exc.error) == (413, "batch_too_large")
