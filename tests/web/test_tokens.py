"""Signed channel tokens on every edge: handshake, event stream, page, POST and chat."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.testing import gen_test
from tornado.web import Application
from tornado.websocket import websocket_connect

from tornado_channels import ChannelHooks, Node, make_app
from tornado_channels.core.frames import CLOSE_POLICY_VIOLATION, CLOSE_TOKEN_EXPIRED
from tornado_channels.web.errors import ApiError
from tornado_channels.web.tokens import VERIFIED_CACHE, TokenVerifier, claims_of, looks_like_jwt

from ..helpers import EventStream, NodeAppTestCase, closed, receive

SECRET = "a-test-secret-that-is-at-least-32-bytes-long"
OTHER_SECRET = "another-secret-that-is-also-32-bytes-long!!"
KEY = "publish-key"


def mint(
    subscribe: list[str] | None = None,
    publish: list[str] | None = None,
    *,
    secret: Any = SECRET,
    algorithm: str = "HS256",
    ttl: float = 60,
    **claims: Any,
) -> str:
    """A token as a backend would mint it with PyJWT."""
    now = time.time()
    payload = {"sub": "u42", "iat": int(now), "exp": now + ttl, **claims}
    if subscribe is not None:
        payload["subscribe"] = subscribe
    if publish is not None:
        payload["publish"] = publish
    return jwt.encode(payload, secret, algorithm=algorithm)


class TokenTestCase(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, token_secret=SECRET, publish_key=KEY, public=("news/",))

    async def refused(self, path: str, **headers: str) -> tuple[int, dict[str, Any]]:
        """The status and JSON body of a refused WebSocket handshake."""
        request = HTTPRequest(f"ws://127.0.0.1:{self.get_http_port()}{path}", headers=headers)
        with self.assertRaises(HTTPClientError) as caught:
            connection = await websocket_connect(request)
            self.clients.append(connection)
        response = caught.exception.response
        assert response is not None
        return caught.exception.code, json.loads(response.body)

    async def backend_post(self, path: str, body: bytes) -> int:
        response = await self.post(path, body, headers={"Authorization": f"Bearer {KEY}"})
        return response.code


class HandshakeTokenTest(TokenTestCase):
    @gen_test
    async def test_no_token_is_401_token_required(self) -> None:
        """A private channel without a token: 401 with a Bearer challenge."""
        code, body = await self.refused("/users/42")
        self.assertEqual((code, body["error"]), (401, "token_required"))

    @gen_test
    async def test_a_granted_channel_is_subscribed_with_either_form_of_token(self) -> None:
        """?token= and Authorization: Bearer both subscribe, and messages arrive."""
        token = mint(["users/42"])
        by_query = await self.ws(f"/users/42?token={token}")
        request = HTTPRequest(
            f"ws://127.0.0.1:{self.get_http_port()}/users/42",
            headers={"Authorization": f"Bearer {token}"},
        )
        by_header = await websocket_connect(request)
        self.clients.append(by_header)
        self.assertEqual(await self.backend_post("/users/42", b"hi"), 202)
        self.assertEqual(await receive(by_query), "hi")
        self.assertEqual(await receive(by_header), "hi")

    @gen_test
    async def test_a_subtree_subscription_needs_a_grant_of_it_or_above(self) -> None:
        """users/ is admitted by users/ or /; a grant of users/1 or of the channel users is 403."""
        for grants in (["users/1"], ["users"], ["users/1/"], ["userspace/"]):
            with self.subTest(grants=grants):
                code, body = await self.refused(f"/users/?token={mint(grants)}")
                self.assertEqual((code, body["error"]), (403, "forbidden"))
        for grants in (["users/"], ["/"]):
            below = await self.ws(f"/users/?token={mint(grants)}")
            self.assertEqual(await self.backend_post("/users/7", b"seven"), 202)
            self.assertEqual(await receive(below), "seven")
            below.close()

    @gen_test
    async def test_grants_match_whole_segments_only(self) -> None:
        """users/4 and users/4/ never admit users/42; users/42/ does not admit users/42."""
        for grants in (["users/4"], ["users/4/"], ["users/42/"], ["users/420"]):
            with self.subTest(grants=grants):
                code, body = await self.refused(f"/users/42?token={mint(grants)}")
                self.assertEqual((code, body["error"]), (403, "forbidden"))

    @gen_test
    async def test_tokens_that_do_not_verify_are_401_invalid_token_saying_why(self) -> None:
        """Forged, unsigned, expired, premature, oversized and malformed tokens, each named."""
        good = mint(["users/42"])
        header, payload, _ = good.split(".")
        forged_signature = mint(["users/42"], secret=OTHER_SECRET).split(".")[2]
        unsigned = jwt.encode({"subscribe": ["users/42"]}, None, algorithm="none")
        cases = {
            f"{header}.{payload}.{forged_signature}": "signature",
            unsigned: "'none'",
            mint(["users/42"], ttl=-60): "expired",
            mint(["users/42"], nbf=time.time() + 600): "not valid yet",
            "x" * 9000: "larger than",
            "not.a.token": "malformed",
            mint(["users//42"]): "'subscribe' claim",
            jwt.encode(
                {"subscribe": "users/42", "exp": time.time() + 60}, SECRET, algorithm="HS256"
            ): "list of channel",
            jwt.encode({"subscribe": ["users/42"]}, SECRET, algorithm="HS256"): "no 'exp'",
        }
        for token, why in cases.items():
            with self.subTest(why=why):
                code, body = await self.refused(f"/users/42?token={token}")
                self.assertEqual((code, body["error"]), (401, "invalid_token"))
                self.assertIn(why, body["message"])

    @gen_test
    async def test_a_public_prefix_needs_no_token_to_listen(self) -> None:
        """news/ is public: anyone subscribes; an invalid token is still refused."""
        listener = await self.ws("/news/today")
        self.assertEqual(await self.backend_post("/news/today", b"extra"), 202)
        self.assertEqual(await receive(listener), "extra")
        code, _ = await self.refused("/news/today?token=garbage")
        self.assertEqual(code, 401)


class ChatTokenTest(TokenTestCase):
    @gen_test
    async def test_chat_needs_a_publish_grant(self) -> None:
        """A subscribe-only token may listen but not talk: its message closes it with 1008."""
        listener = await self.ws(f"/users/42?token={mint(['users/42'])}")
        talker = await self.ws(f"/users/42?token={mint(['users/42'])}")
        await talker.write_message("spoofed")
        code, reason = await closed(talker)
        self.assertEqual(code, CLOSE_POLICY_VIOLATION)
        self.assertIn("token", reason or "")
        await self.quiet(listener)

    @gen_test
    async def test_chat_with_a_publish_grant_is_published(self) -> None:
        """With the channel in its publish grants, a client's message reaches everyone."""
        talker = await self.ws(f"/users/42?token={mint(['users/42'], ['users/42'])}")
        await talker.write_message("hello")
        self.assertEqual(await receive(talker), "hello")

    @gen_test
    async def test_anonymous_listeners_on_a_public_channel_cannot_talk(self) -> None:
        """No token on a public channel: listening yes, publishing no (1008)."""
        talker = await self.ws("/news/today")
        await talker.write_message("hello")
        code, _ = await closed(talker)
        self.assertEqual(code, CLOSE_POLICY_VIOLATION)


class PostTokenTest(TokenTestCase):
    @gen_test
    async def test_a_post_with_a_token_publishes_only_where_it_is_granted(self) -> None:
        """A token's publish grants: its channel and subtree yes, anything else 403."""
        token = mint(publish=["users/42", "rooms/"])
        headers = {"Authorization": f"Bearer {token}"}
        self.assertEqual((await self.post("/users/42", b"m", headers=headers)).code, 202)
        self.assertEqual((await self.post("/rooms/1", b"m", headers=headers)).code, 202)
        self.assertEqual((await self.post("/rooms/", b"m", headers=headers)).code, 202)
        refused = await self.post("/users/43", b"m", headers=headers)
        self.assertEqual((refused.code, json.loads(refused.body)["error"]), (403, "forbidden"))
        by_query = await self.post(f"/users/42?token={token}", b"m")
        self.assertEqual(by_query.code, 202)

    @gen_test
    async def test_the_publish_key_still_publishes_anywhere(self) -> None:
        """A backend's publish key is not a token: it publishes to any channel."""
        self.assertEqual(await self.backend_post("/anything/at/all", b"m"), 202)

    @gen_test
    async def test_an_invalid_token_on_a_post_is_401(self) -> None:
        """A Bearer credential shaped like a JWT that does not verify is 401 invalid_token."""
        forged = mint(publish=["users/42"], secret=OTHER_SECRET)
        for credential in ("junk.junk.junk", forged):
            with self.subTest(credential=credential):
                response = await self.post(
                    "/users/42", b"m", headers={"Authorization": f"Bearer {credential}"}
                )
                self.assertEqual(
                    (response.code, json.loads(response.body)["error"]), (401, "invalid_token")
                )

    @gen_test
    async def test_a_wrong_key_is_403_even_where_tokens_are_on(self) -> None:
        """A Bearer credential that is neither the key nor JWT-shaped is a wrong key: 403."""
        listener = await self.ws("/news/today")
        for path, body in (
            ("/news/today", b"m"),
            ("/", b"m"),
            ("/_/publish", json.dumps({"messages": [{"channel": "news/today", "data": "m"}]})),
        ):
            for credential in ("junk", f"{KEY}x", KEY[:-1], "a.b"):
                with self.subTest(path=path, credential=credential):
                    response = await self.post(
                        path, body, headers={"Authorization": f"Bearer {credential}"}
                    )
                    self.assertEqual(response.code, 403)
                    self.assertEqual(
                        json.loads(response.body),
                        {"error": "forbidden", "message": "wrong publish key"},
                    )
        await self.quiet(listener)

    @gen_test
    async def test_a_batch_with_a_token_needs_every_target_granted(self) -> None:
        """One target outside the token's grants refuses the whole batch."""
        headers = {"Authorization": f"Bearer {mint(publish=['users/42'])}"}
        ok = json.dumps({"messages": [{"channel": "users/42", "data": "a"}]})
        bad = json.dumps(
            {"messages": [{"channel": "users/42", "data": "a"}, {"channel": "x", "data": "b"}]}
        )
        self.assertEqual((await self.post("/_/publish", ok, headers=headers)).code, 202)
        self.assertEqual((await self.post("/_/publish", bad, headers=headers)).code, 403)


class StreamAndPageTokenTest(TokenTestCase):
    @gen_test
    async def test_an_event_stream_needs_a_token_too(self) -> None:
        """SSE without a token is 401; with one it streams the channel."""
        missing = await self.http_client.fetch(
            self.get_url("/users/42"), headers={"Accept": "text/event-stream"}, raise_error=False
        )
        self.assertEqual(missing.code, 401)
        stream = await EventStream.open(
            self.get_http_port(), f"/users/42?token={mint(['users/42'])}"
        )
        try:
            self.assertEqual((await stream.next())["event"], "recovery")
            self.assertEqual(await self.backend_post("/users/42", b"over sse"), 202)
            self.assertEqual((await stream.next())["data"], "over sse")
        finally:
            stream.close()

    @gen_test
    async def test_a_page_checks_the_token_it_carries(self) -> None:
        """A page's token is checked like its connection's; without one it says one is needed."""
        missing = await self.http_client.fetch(self.get_url("/users/42"), raise_error=False)
        self.assertEqual(missing.code, 200)
        self.assertIn(b'data-needs-token="1"', missing.body)
        public = await self.http_client.fetch(self.get_url("/news/1"))
        self.assertNotIn(b"data-needs-token", public.body)
        invalid = await self.http_client.fetch(
            self.get_url("/users/42?token=junk"), raise_error=False
        )
        self.assertEqual(invalid.code, 401)
        wrong = await self.http_client.fetch(
            self.get_url(f"/users/42?token={mint(['users/4'])}"), raise_error=False
        )
        self.assertEqual(wrong.code, 403)
        page = await self.http_client.fetch(self.get_url(f"/users/42?token={mint(['users/42'])}"))
        self.assertIn(b"users/42", page.body)


class ExpiryTest(TokenTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, token_secret=SECRET, publish_key=KEY, token_leeway=1.0)

    @gen_test(timeout=20)
    async def test_a_connection_is_closed_with_4001_when_its_token_expires(self) -> None:
        """At exp plus the leeway, exactly the expired connection is closed, with 4001."""
        short = await self.ws(f"/users/42?token={mint(['users/42'], ttl=1.0)}")
        long = await self.ws(f"/users/42?token={mint(['users/42'], ttl=600)}")
        started = time.monotonic()
        code, reason = await closed(short, timeout=15)
        took = time.monotonic() - started
        self.assertEqual((code, reason), (CLOSE_TOKEN_EXPIRED, "token expired"))
        # exp (1 s) plus the 1 s leeway, give or take a tick.
        self.assertGreater(took, 1.5)
        self.assertEqual(await self.backend_post("/users/42", b"still here"), 202)
        self.assertEqual(await receive(long), "still here")

    @gen_test(timeout=20)
    async def test_an_event_stream_ends_with_a_4001_close_event(self) -> None:
        """Over SSE the expiry is an ``event: close`` carrying 4001, then the stream ends."""
        token = mint(["users/42"], ttl=1.0)
        stream = await EventStream.open(self.get_http_port(), f"/users/42?token={token}")
        try:
            self.assertEqual((await stream.next())["event"], "recovery")
            close = await stream.next(timeout=15)
            assert close is not None
            self.assertEqual(close["event"], "close")
            self.assertEqual(json.loads(close["data"]), {"code": 4001, "reason": "token expired"})
            self.assertIsNone(await stream.next(timeout=5))
        finally:
            stream.close()


def without_exp(subscribe: list[str], publish: list[str] | None = None, **claims: Any) -> str:
    """A token that never expires, as a careless backend would mint it."""
    payload: dict[str, Any] = {"sub": "u42", "iat": int(time.time()), "subscribe": subscribe}
    if publish is not None:
        payload["publish"] = publish
    return jwt.encode({**payload, **claims}, SECRET, algorithm="HS256")


class ExpRequiredTest(TokenTestCase):
    @gen_test
    async def test_a_token_without_exp_is_refused_everywhere(self) -> None:
        """No exp: handshake, event stream, page and POST all answer 401 invalid_token naming it."""
        token = without_exp(["users/42"], ["users/42"])
        code, body = await self.refused(f"/users/42?token={token}")
        self.assertEqual((code, body["error"]), (401, "invalid_token"))
        self.assertIn("'exp'", body["message"])
        for headers in ({"Accept": "text/event-stream"}, {"Accept": "text/html"}):
            with self.subTest(headers=headers):
                response = await self.http_client.fetch(
                    self.get_url(f"/users/42?token={token}"), headers=headers, raise_error=False
                )
                self.assertEqual(response.code, 401)
                self.assertIn("'exp'", json.loads(response.body)["message"])
        response = await self.post("/users/42", b"m", headers={"Authorization": f"Bearer {token}"})
        self.assertEqual(
            (response.code, json.loads(response.body)["error"]), (401, "invalid_token")
        )
        self.assertIn("no 'exp' claim", json.loads(response.body)["message"])


class TokensWithoutExpAllowedTest(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, token_secret=SECRET, allow_tokens_without_exp=True)

    @gen_test
    async def test_the_flag_lets_tokens_without_exp_in_and_still_checks_the_rest(self) -> None:
        """With the flag a no-exp token subscribes and chats; expired or early ones still fail."""
        talker = await self.ws(f"/room?token={without_exp(['room'], ['room'])}")
        await talker.write_message("still here")
        self.assertEqual(await receive(talker), "still here")
        for token, why in (
            (mint(["room"], ttl=-60), "expired"),
            (without_exp(["room"], nbf=time.time() + 600), "not valid yet"),
        ):
            with self.subTest(why=why):
                response = await self.http_client.fetch(
                    self.get_url(f"/room?token={token}"), raise_error=False
                )
                self.assertEqual(response.code, 401)
                self.assertIn(why, json.loads(response.body)["message"])


class AudienceTest(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, token_secret=SECRET, token_audience="app", token_issuer="auth")

    @gen_test
    async def test_a_token_for_another_audience_or_issuer_is_refused(self) -> None:
        """Aud and iss must be the configured ones; the right ones subscribe."""
        for claims, why in (({"aud": "other", "iss": "auth"}, "audience"),
                            ({"aud": "app", "iss": "evil"}, "issuer")):  # fmt: skip
            token = mint(["a"], **claims)
            response = await self.http_client.fetch(
                self.get_url(f"/a?token={token}"), raise_error=False
            )
            self.assertEqual(response.code, 401)
            self.assertIn(why, json.loads(response.body)["message"])
        await self.ws(f"/a?token={mint(['a'], aud='app', iss='auth')}")


def hmac_signed(payload: dict[str, Any], key: bytes) -> str:
    """An HS256 token made by hand (PyJWT itself refuses to key HMAC with a public PEM)."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    signing = part(b'{"alg":"HS256","typ":"JWT"}') + "." + part(json.dumps(payload).encode())
    signature = hmac.new(key, signing.encode(), hashlib.sha256).digest()
    return signing + "." + part(signature)


def pem(key: Any) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC = ec.generate_private_key(ec.SECP256R1())
ED = ed25519.Ed25519PrivateKey.generate()
RETIRED = ec.generate_private_key(ec.SECP256R1())


class PublicKeyTest(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, token_public_key=(pem(RSA), pem(EC), pem(ED)))

    @gen_test
    async def test_tokens_signed_by_any_configured_key_verify(self) -> None:
        """RS256, ES256 and EdDSA tokens from the three configured keys all subscribe."""
        for key, algorithm in ((RSA, "RS256"), (EC, "ES256"), (ED, "EdDSA")):
            await self.ws(f"/a?token={mint(['a'], secret=key, algorithm=algorithm)}")

    @gen_test
    async def test_a_retired_key_and_hmac_confusion_are_refused(self) -> None:
        """A key no longer configured fails; an HS256 token keyed with a public PEM is refused."""
        retired = mint(["a"], secret=RETIRED, algorithm="ES256")
        confused = hmac_signed({"subscribe": ["a"]}, pem(RSA).encode())
        for token, why in ((retired, "signature"), (confused, "'HS256'")):
            response = await self.http_client.fetch(
                self.get_url(f"/a?token={token}"), raise_error=False
            )
            self.assertEqual(response.code, 401)
            self.assertIn(why, json.loads(response.body)["message"])


class Recording(ChannelHooks):
    """Hooks that note who (the token's sub) is asking."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str | None]] = []

    def authorize_subscribe(self, request: Any, channel: Any) -> bool:
        claims = claims_of(request)
        self.seen.append(("subscribe", claims.subject if claims else None))
        return True

    def authorize_publish(self, request: Any, target: Any) -> bool:
        claims = claims_of(request)
        self.seen.append(("publish", claims.subject if claims else None))
        return True

    def on_client_message(self, request: Any, channel: Any, payload: bytes) -> bytes:
        claims = claims_of(request)
        self.seen.append(("message", claims.subject if claims else None))
        return payload


class HookClaimsTest(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        self.hooks = Recording()
        return make_app(node, hooks=self.hooks, token_secret=SECRET)

    @gen_test
    async def test_hooks_see_who_is_asking(self) -> None:
        """authorize_subscribe, authorize_publish and on_client_message get the token's sub."""
        token = mint(["a"], ["a"])
        client = await self.ws(f"/a?token={token}")
        await client.write_message("hi")
        self.assertEqual(await receive(client), "hi")
        await self.post("/a", b"x", headers={"Authorization": f"Bearer {token}"})
        self.assertEqual(
            self.hooks.seen, [("subscribe", "u42"), ("message", "u42"), ("publish", "u42")]
        )


class RedactionTest(TokenTestCase):
    @gen_test
    async def test_tokens_in_urls_never_reach_the_access_log(self) -> None:
        """Pages, streams, refused handshakes and POSTs log their URL with token= hidden."""
        token = mint(["users/42"], ["users/42"])
        with self.assertLogs("tornado.access", level=logging.INFO) as logs:
            await self.http_client.fetch(self.get_url(f"/users/42?token={token}"))
            await self.post(f"/users/42?token={token}", b"m")
            await self.post(f"/users/43?token={token}", b"m")
            await self.http_client.fetch(self.get_url(f"/x?token={token}"), raise_error=False)
            await asyncio.sleep(0)
        text = "\n".join(logs.output)
        self.assertNotIn(token, text)
        self.assertIn("token=[redacted]", text)


@pytest.mark.parametrize(
    ("credential", "shaped"),
    [
        (mint(["a"]), True),
        ("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", True),  # alg none: a JWT, refused once parsed
        ("abc.def.ghi", True),
        ("not.a.token", True),
        ("publish-key", False),
        ("0123456789abcdef" * 4, False),  # openssl rand -hex 32
        ("a.b", False),
        ("a.b.c.d", False),
        ("a..c", False),
        ("a.b.c ", False),
        ("a+b.c/d.e=", False),  # base64, not base64url
        ("", False),
    ],
)
def test_a_jwt_is_told_from_a_key_by_its_shape(credential: str, shaped: bool) -> None:
    """Three base64url parts joined by dots look like a JWT; anything else is taken for a key."""
    assert looks_like_jwt(credential) is shaped


def test_a_verifier_requires_exp_unless_told_otherwise() -> None:
    """TokenVerifier refuses a token without exp by default, and accepts it with require_exp off."""
    token = without_exp(["a"])
    with pytest.raises(ApiError) as refused:
        TokenVerifier([SECRET]).verify(token)
    assert (refused.value.status_code, refused.value.error) == (401, "invalid_token")
    claims = TokenVerifier([SECRET], require_exp=False).verify(token)
    assert (claims.subject, claims.expires_at) == ("u42", None)


def test_a_short_secret_is_refused_at_once() -> None:
    """An HMAC secret under 32 bytes cannot be configured (RFC 7518 3.2)."""
    with pytest.raises(ValueError, match="at least 32 bytes"):
        make_app(Node(), token_secret="short")


def test_verified_tokens_are_remembered_within_a_bound() -> None:
    """However many distinct tokens arrive, at most VERIFIED_CACHE are remembered."""
    verifier = TokenVerifier(["s" * 32])
    for user in range(VERIFIED_CACHE + 200):
        verifier.verify(verifier.mint(f"u{user}", [f"users/{user}"]))
    assert len(verifier._verified) == VERIFIED_CACHE
