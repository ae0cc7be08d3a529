"""The settings of one mount point's channel routes, each declared once (see core/settings.py).

The defaults are the same for the library (``channel_routes(node, ...)``,
``make_app(node, ...)``) and the command line: a host application gets the
limits against hostile clients the standalone server has.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.channels import covers
from ..core.settings import setting

MiB = 1 << 20


@dataclass(frozen=True)
class ChannelConfig:
    """What the handlers of one mount point need to know."""

    prefix: str = setting(
        "/", "URL path the channels are mounted under, with trailing '/'", flag=False
    )
    max_message_size: int = setting(
        MiB,
        "largest message in bytes: POST bodies over it get 413, WebSocket messages 1009",
        metavar="BYTES",
    )
    compression: str = setting(
        "on",
        "permessage-deflate for WebSocket clients that offer it: each message compressed once "
        "for every client that agreed alike, none kept per connection (off: never compress)",
        choices=("on", "off"),
    )
    compression_threshold: int = setting(
        256,
        "messages smaller than this go to WebSocket clients uncompressed (they gain little)",
        metavar="BYTES",
    )
    ping_interval: float = setting(
        20.0,
        "seconds between WebSocket pings (0 disables them); below any proxy's read timeout",
        metavar="SECONDS",
    )
    ping_timeout: float = setting(
        20.0,
        "seconds without a pong before a WebSocket peer is dropped (at most --ping-interval)",
        metavar="SECONDS",
    )
    list_channels: bool = setting(
        False,
        "list the active channels on the home page (off: channel names can be private)",
    )
    publish_key: str | None = setting(
        None,
        "require 'Authorization: Bearer <key>' (or, with a token key, a token's publish "
        "grant) on every POST and WebSocket client message (401 without, 403 if wrong); "
        "best set through the environment, where other users cannot see it",
        metavar="KEY",
    )
    read_only: tuple[str, ...] = setting(
        (),
        "comma-separated channel prefixes WebSocket clients may not publish to "
        "('/' for every channel; 'users' and 'users/' both cover users and below); "
        "POSTs are unaffected",
        metavar="PREFIXES",
    )
    trusted_origins: tuple[str, ...] = setting(
        (),
        "comma-separated origins (https://app.example) allowed to open WebSockets and "
        "POST from another site; other cross-site requests get 403",
        metavar="ORIGINS",
    )
    max_connections: int = setting(
        10000,
        "WebSocket connections this process accepts; beyond, the handshake gets 503 (0: no cap)",
    )
    client_rate: float = setting(
        50.0,
        "frames per second (messages, fragments, pings) one WebSocket client may send "
        "on average (0: no limit); beyond its burst it is closed with 1008",
    )
    client_burst: float = setting(100.0, "frames a WebSocket client may send at once")
    sse_heartbeat: float = setting(
        15.0,
        "seconds between heartbeats on an idle event stream (below proxies' read timeouts)",
        metavar="SECONDS",
    )
    token_secret: str | None = setting(
        None,
        "verify channel tokens signed with this HMAC secret (HS256/384/512); with a token key "
        "set, subscribing and publishing need a token that grants the channel (or, to "
        "publish, the publish key); best set through the environment",
        metavar="SECRET",
    )
    token_public_key: tuple[str, ...] = setting(
        (),
        "comma-separated PEM files of public keys (RSA, EC, Ed25519) that verify channel "
        "tokens; several, for key rotation",
        metavar="FILES",
    )
    token_audience: str | None = setting(
        None, "accept only tokens whose 'aud' claim names this audience"
    )
    token_issuer: str | None = setting(None, "accept only tokens whose 'iss' claim is this issuer")
    token_leeway: float = setting(
        5.0,
        "seconds of clock skew allowed when checking a token's exp, nbf and iat",
        metavar="SECONDS",
    )
    allow_tokens_without_exp: bool = setting(
        False,
        "accept channel tokens that have no 'exp' claim (off: such a token is refused, 401 "
        "invalid_token, since nothing but a key rotation would ever end it)",
    )
    public: tuple[str, ...] = setting(
        (),
        "comma-separated channel prefixes anyone may subscribe to without a token ('/' for "
        "every channel: tokens then only gate publishing)",
        metavar="PREFIXES",
    )
    max_batch_messages: int = setting(1000, "most messages in one POST /_/publish")
    max_batch_bytes: int = setting(
        8 * MiB, "largest POST /_/publish body in bytes (413 beyond)", metavar="BYTES"
    )

    def __post_init__(self) -> None:
        if not self.prefix.startswith("/") or not self.prefix.endswith("/"):
            raise ValueError(f"prefix must start and end with '/': {self.prefix!r}")
        if self.max_message_size < 1:
            raise ValueError("max_message_size must be positive")
        if self.compression_threshold < 0:
            raise ValueError("compression_threshold must not be negative")
        if self.max_batch_messages < 1 or self.max_batch_bytes < 1:
            raise ValueError("max_batch_messages and max_batch_bytes must be positive")

    def client_may_publish(self, channel: str) -> bool:
        """Whether a WebSocket client may publish to ``channel``.

        A read-only prefix covers its channel and every channel below it,
        whole segments only, spelled with or without a trailing ``/``:
        ``users`` and ``users/`` both cover ``users`` and ``users/1``, never
        ``userspace``; ``/`` covers everything.
        """
        return not any(covers(prefix, channel) for prefix in self.read_only)

    @property
    def static_prefix(self) -> str:
        """URL path of the bundled page assets."""
        return self.prefix + "_/static/"
