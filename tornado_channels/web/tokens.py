"""Signed channel tokens: who may subscribe and publish, checked on every edge (PyJWT verifies).

An application's backend gives a browser a JWT saying which channels it may
use (``subscribe`` and ``publish`` grant lists, see core/grants.py), signed
with the server's ``--token-secret`` (HS256/384/512) or a private key whose
public half is a ``--token-public-key`` (RS/PS/ES/EdDSA; several, for
rotation).  A client hands it over as ``?token=`` (all a browser's WebSocket
and EventSource can do) or ``Authorization: Bearer``.

What is refused, and how: no token where one is needed, ``401
token_required``; one that does not verify (signature, algorithm, format,
expiry, audience, issuer), ``401 invalid_token`` saying which; one without
the grant, ``403 forbidden``.  ``alg: none`` is never accepted, and an
HMAC-signed token is refused where only public keys are configured (so a
public key can never be used as an HMAC secret).  Tokens over 8 KiB are
refused before they are parsed, and a token without ``exp`` is refused
unless ``--allow-tokens-without-exp`` says otherwise: a leaked token that
never expires could only be ended by rotating the key.

A Bearer credential is either the publish key or a token.  One shaped like a
JWT (three base64url parts: :func:`looks_like_jwt`) is verified as a token
where tokens are on; anything else that is not the key is a wrong key
(``403``) where a key is set.
"""

from __future__ import annotations

import hmac
import re
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from tornado.httputil import HTTPServerRequest

from ..core.channels import Target, covers
from ..core.grants import Claims, Grants, InvalidGrant
from . import _tornado
from .config import ChannelConfig
from .errors import ApiError

#: The public keys a JWT can be verified with.
PublicKey = RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey | Ed448PublicKey

# The public keys each family of algorithms is verified with.
_KINDS: dict[str, type | tuple[type, ...]] = {
    "RS": RSAPublicKey,
    "PS": RSAPublicKey,
    "ES": EllipticCurvePublicKey,
    "Ed": (Ed25519PublicKey, Ed448PublicKey),
}

#: Verified tokens remembered (with their claims) so a reconnect skips the signature check.
VERIFIED_CACHE = 4096
#: Shortest HMAC secret accepted, in bytes (RFC 7518 section 3.2, for HS256).
MIN_SECRET = 32
#: Longest token accepted, in bytes: larger ones are refused unparsed.
MAX_TOKEN = 8192
HMAC = ("HS256", "HS384", "HS512")
ASYMMETRIC = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip

# The request attribute verified claims are kept under, for hooks (see claims_of).
_ATTRIBUTE = "tornado_channels_claims"

# A JWS in compact form: header, payload and signature, base64url each (the
# signature empty only for alg none, which is refused once parsed).
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

_WHY = (
    (jwt.MissingRequiredClaimError, "the token has no 'exp' claim: tokens must expire"),
    (jwt.ExpiredSignatureError, "the token has expired"),
    (jwt.ImmatureSignatureError, "the token is not valid yet"),
    (jwt.InvalidAudienceError, "the token is for another audience"),
    (jwt.InvalidIssuerError, "the token is from another issuer"),
    (jwt.InvalidIssuedAtError, "the token's issue time is not valid"),
    (jwt.InvalidSignatureError, "the token's signature is not valid"),
    (jwt.InvalidAlgorithmError, "the token's algorithm is not accepted here"),
    (jwt.DecodeError, "the token is malformed"),
)


def invalid(message: str) -> ApiError:
    """The 401 for a token that does not verify."""
    return ApiError(
        401, "invalid_token", message, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


class TokenVerifier:
    """Checks tokens against the configured secrets and public keys; returns their claims."""

    def __init__(
        self,
        secrets: Sequence[str] = (),
        public_keys: Sequence[str] = (),
        *,
        audience: str | None = None,
        issuer: str | None = None,
        leeway: float = 5.0,
        require_exp: bool = True,
    ) -> None:
        if not secrets and not public_keys:
            raise ValueError("a token verifier needs a secret or a public key")
        for secret in secrets:
            if len(secret.encode()) < MIN_SECRET:
                # RFC 7518 3.2: an HMAC key at least as long as the hash.
                raise ValueError(
                    f"the token secret must be at least {MIN_SECRET} bytes "
                    "(e.g. openssl rand -hex 32)"
                )
        self.secrets = tuple(secrets)
        # PEM text, or a file holding it.
        self.public_keys = tuple(_public_key(key) for key in public_keys)
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        #: Whether a token without ``exp`` is refused (``--allow-tokens-without-exp`` turns it off).
        self.require_exp = require_exp
        # Tokens verified lately and their claims: a client reconnecting with
        # the same token (a reload, a server restart) skips the signature
        # check; its expiry is still checked every time.  Bounded (LRU).
        self._verified: OrderedDict[str, Claims] = OrderedDict()

    @classmethod
    def from_config(cls, config: ChannelConfig) -> TokenVerifier | None:
        """The verifier ``config`` asks for, or None when no token key is configured."""
        secrets = (config.token_secret,) if config.token_secret else ()
        if not secrets and not config.token_public_key:
            return None
        return cls(
            secrets,
            config.token_public_key,
            audience=config.token_audience,
            issuer=config.token_issuer,
            leeway=config.token_leeway,
            require_exp=not config.allow_tokens_without_exp,
        )

    def verify(self, token: str) -> Claims:
        """The claims of ``token``, or raise the 401 that says why it is refused."""
        if len(token) > MAX_TOKEN:
            raise invalid(f"the token is larger than {MAX_TOKEN} bytes")
        cached = self._verified.get(token)
        if cached is not None:
            expires = cached.expires_at
            if expires is not None and time.time() > expires + self.leeway:
                del self._verified[token]
                raise invalid("the token has expired")
            self._verified.move_to_end(token)
            return cached
        claims = self._check(token)
        self._verified[token] = claims
        if len(self._verified) > VERIFIED_CACHE:
            self._verified.popitem(last=False)
        return claims

    def _check(self, token: str) -> Claims:
        """Verify ``token`` with PyJWT: its signature, algorithm, times, audience, issuer."""
        try:
            algorithm = str(jwt.get_unverified_header(token).get("alg"))
        except jwt.PyJWTError:
            raise invalid("the token is malformed") from None
        keys: Sequence[Any]
        if algorithm in HMAC:
            keys = self.secrets
        elif algorithm in ASYMMETRIC:
            # Only keys of the algorithm's kind: PyJWT refuses the others outright.
            kind = _KINDS[algorithm[:2]]
            keys = [key for key in self.public_keys if isinstance(key, kind)]
        else:
            keys = ()
        if not keys:
            raise invalid(f"tokens signed with {algorithm!r} are not accepted here")
        payload: dict[str, Any] | None = None
        for key in keys:
            try:
                payload = jwt.decode(
                    token,
                    key,
                    algorithms=[algorithm],
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.leeway,
                    options={
                        "verify_aud": self.audience is not None,
                        "require": ["exp"] if self.require_exp else [],
                    },
                )
                break
            except jwt.InvalidSignatureError:
                continue  # Perhaps the next key (rotation).
            except jwt.PyJWTError as exc:
                raise invalid(_why(exc)) from None
        if payload is None:
            raise invalid("the token's signature is not valid")
        return _claims(payload)

    def mint(
        self,
        subject: str | None,
        subscribe: Sequence[str] = (),
        publish: Sequence[str] = (),
        ttl: float = 3600,
        now: float | None = None,
    ) -> str:
        """A token signed with the (first) secret: for development and tests."""
        if not self.secrets:
            raise ValueError("minting needs a --token-secret")
        issued = int(time.time() if now is None else now)
        payload: dict[str, Any] = {
            "iat": issued,
            "exp": issued + int(ttl),
            "subscribe": list(subscribe),
            "publish": list(publish),
        }
        if subject is not None:
            payload["sub"] = subject
        if self.audience is not None:
            payload["aud"] = self.audience
        if self.issuer is not None:
            payload["iss"] = self.issuer
        return jwt.encode(payload, self.secrets[0], algorithm="HS256")


class Guard:
    """What a mount point checks before letting a request subscribe or publish."""

    def __init__(self, verifier: TokenVerifier | None, public: Sequence[str] = ()) -> None:
        self.verifier = verifier
        self.public = tuple(public)

    @classmethod
    def from_config(cls, config: ChannelConfig) -> Guard:
        """The guard of a mount point (it lets everything through without a token key)."""
        return cls(TokenVerifier.from_config(config), config.public)

    @property
    def enabled(self) -> bool:
        """Whether tokens are required at all."""
        return self.verifier is not None

    def authenticate(self, request: HTTPServerRequest, token: str | None = None) -> Claims | None:
        """Verify the request's token (or ``token``), if any; keep its claims for hooks."""
        token = token if token is not None else token_of(request)
        if self.verifier is None or token is None:
            return None
        claims = self.verifier.verify(token)
        setattr(request, _ATTRIBUTE, claims)
        return claims

    def subscriber(
        self, request: HTTPServerRequest, target: Target, *, tokenless: bool = False
    ) -> Claims | None:
        """Claims of a request that may subscribe to ``target``; raise its 401/403 if it may not.

        ``tokenless`` lets a request without a token through (None): the
        application's hooks decide it (``ChannelHooks.authenticates``).
        """
        claims = self.authenticate(request)
        if self.verifier is None:
            return claims
        if claims is None:
            if tokenless or self.is_public(target):
                return None
            raise ApiError(
                401,
                "token_required",
                f"subscribing to '{target}' needs a token (?token= or Authorization: Bearer)",
                {"WWW-Authenticate": 'Bearer realm="channels"'},
            )
        if not claims.subscribe.allows(target) and not self.is_public(target):
            raise ApiError(403, "forbidden", f"the token does not grant subscribing to '{target}'")
        return claims

    def may_publish(self, claims: Claims | None, target: Target) -> bool:
        """Whether a client with ``claims`` may publish to ``target`` (chat, a token's POST)."""
        if self.verifier is None:
            return True
        return claims is not None and claims.publish.allows(target)

    def is_public(self, target: Target) -> bool:
        """Whether ``target`` lies under a --public prefix (readable without a token)."""
        name = str(target).strip("/")
        return any(covers(prefix, name) for prefix in self.public)


def token_of(request: HTTPServerRequest) -> str | None:
    """The token a request carries: ``?token=``, else ``Authorization: Bearer``."""
    token = query_token(request.query)
    return token if token is not None else bearer_of(request.headers)


def query_token(query: str) -> str | None:
    """The ``token`` argument of a query string, read as :func:`token_of` reads it; or None."""
    if "token" not in query:
        return None  # Most requests: no parsing at all.
    values = parse_qs(query, keep_blank_values=True, encoding="latin-1").get("token")
    return values[0] if values else None


def bearer_of(headers: Mapping[str, str]) -> str | None:
    """The credential in ``Authorization: Bearer <credential>`` (by lower-case name), or None."""
    scheme, _, credential = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        return None
    return credential.strip()


def looks_like_jwt(credential: str) -> bool:
    """Whether ``credential`` has a JWT's shape: three base64url parts joined by dots.

    How a Bearer credential that is not the publish key is told apart: a
    token to verify (``401 invalid_token`` if it does not), or a wrong key
    (``403``).  A publish key of that shape would be taken for a token:
    ``openssl rand -hex 32`` keys never are.
    """
    return _JWT_SHAPE.fullmatch(credential) is not None


def wrong_key(bearer: str | None, key: str | None, guard: Guard) -> bool:
    """Whether a Bearer credential that is not the publish key is a wrong key (403).

    Where a key is set: always, unless tokens are on and it looks like a JWT
    (then it is verified as a token).  Where none is set, a credential can
    only be a token (or nothing the server checks).
    """
    if bearer is None or key is None:
        return False
    return not (guard.enabled and looks_like_jwt(bearer))


def caller_of(claims: Claims, token: str) -> str:
    """Who publishes with ``token``, for scoping its idempotency keys (core/idempotency.py).

    Its subject, the user id, which every token of one user shares (a retry
    with a renewed token is still that user's); a token without one is its
    own caller.  Tagged, so no subject can pass for a token.
    """
    return f"sub:{claims.subject}" if claims.subject is not None else f"token:{token}"


def carries_key(headers: Mapping[str, str], key: str | None) -> bool:
    """Whether ``headers`` carry ``key`` as ``Authorization: Bearer <key>`` (never, if None)."""
    if key is None:
        return False
    given = bearer_of(headers)
    # Constant-time: the comparison must not leak how much of the key matched.
    return given is not None and hmac.compare_digest(given.encode(), key.encode())


def claims_of(request: HTTPServerRequest) -> Claims | None:
    """The verified claims of the token a request carried (for hooks); None without one."""
    claims = getattr(request, _ATTRIBUTE, None)
    return claims if isinstance(claims, Claims) else None


def redact(uri: str) -> str:
    """``uri`` with the value of every parameter named ``token`` (however encoded) hidden."""
    return _tornado.redact(uri)


def _claims(payload: dict[str, Any]) -> Claims:
    subject = payload.get("sub")
    if subject is not None and not isinstance(subject, str):
        raise invalid("the token's 'sub' claim must be a string")
    grants = []
    for name in ("subscribe", "publish"):
        entries = payload.get(name, [])
        if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
            raise invalid(f"the token's {name!r} claim must be a list of channel names")
        try:
            grants.append(Grants.parse(entries))
        except InvalidGrant as exc:
            raise invalid(f"the token's {name!r} claim has a bad {exc}") from None
    expires = payload.get("exp")
    expires_at = float(expires) if isinstance(expires, int | float) else None
    return Claims(subject, grants[0], grants[1], expires_at)


def _why(exc: Exception) -> str:
    for kind, message in _WHY:
        if isinstance(exc, kind):
            return message
    return f"the token is not valid: {exc}"


def _public_key(key: str) -> PublicKey:
    """A public key from PEM text or a PEM file; only the kinds JWTs are signed with."""
    pem = key.encode() if key.lstrip().startswith("-----BEGIN") else Path(key).read_bytes()
    loaded = load_pem_public_key(pem)
    if not isinstance(
        loaded, RSAPublicKey | EllipticCurvePublicKey | Ed25519PublicKey | Ed448PublicKey
    ):
        raise ValueError(f"{key[:60]!r}: not an RSA, EC or EdDSA public key")
    return loaded
