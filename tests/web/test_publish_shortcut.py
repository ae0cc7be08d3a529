"""The standalone server's publishing shortcut answers every POST as Tornado's routing would.

Two wires serve the same application on real loopback sockets, one asking
the shortcut first and one routing every request through Tornado; each
request below goes to both, and the answers must match byte for byte (less
the Date and the epoch of each position).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import jwt
import pytest
from tornado.httputil import HTTPServerRequest

from tornado_channels import MemoryBroker, Node
from tornado_channels.core.channels import Target
from tornado_channels.server.wire import WireServer
from tornado_channels.web.app import make_app
from tornado_channels.web.hooks import ChannelHooks, Reject
from tornado_channels.web.tokens import claims_of

from ..helpers.support import bound_socket

SECRET = "a-test-secret-that-is-at-least-32-bytes-long"
KEY = "the-publish-key"


def token(publish: list[str]) -> str:
    return jwt.encode({"sub": "ann", "publish": publish, "exp": 2**40}, SECRET, algorithm="HS256")


class RecordingHooks(ChannelHooks):
    """Records what a hook sees of each request, and refuses the channel 'hooks/no'."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    async def authorize_publish(self, request: HTTPServerRequest, target: Target) -> bool:
        claims = claims_of(request)
        self.seen.append(
            (
                request.method,
                request.uri,
                request.path,
                request.query_arguments,
                request.headers.get("X-Trace"),
                request.remote_ip,
                request.host,
                str(target),
                claims.subject if claims is not None else None,
            )
        )
        if str(target) == "hooks/reject":
            raise Reject("not this one")
        return str(target) != "hooks/no"


def post(path: str, body: bytes = b"hi", *fields: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *fields]
    if not any(
        field.lower().startswith(("content-length", "transfer-encoding")) for field in fields
    ):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


REQUESTS = {
    "a channel": post("/users/1"),
    "a subtree": post("/users/"),
    "the root": post("/"),
    "raw UTF-8 in the path": post("/caf\xc3\xa9"),
    "percent-encoded UTF-8": post("/caf%C3%A9"),
    "a query string": post("/users/1?x=1&y"),
    "the key": post("/keyed/1", b"k", f"Authorization: Bearer {KEY}"),
    "a wrong key": post("/keyed/1", b"k", "Authorization: Bearer nope"),
    "a token granting it": post("/users/2", b"t", f"Authorization: Bearer {token(['users/'])}"),
    "a token in the query": post(f"/users/3?token={token(['users/'])}", b"t"),
    "a token not granting it": post("/other/1", b"t", f"Authorization: Bearer {token(['users/'])}"),
    "a broken token": post("/users/1", b"t", "Authorization: Bearer abc.def.ghi"),
    "a hook's refusal": post("/hooks/no"),
    "a hook's Reject": post("/hooks/reject"),
    "a hook's view": post(
        "/hooks/yes?q=1",
        b"v",
        "X-Trace: abc",
        "X-Real-IP: 10.0.0.9",
        # A token: where tokens are on, an anonymous POST never reaches the hooks.
        f"Authorization: Bearer {token(['hooks/'])}",
    ),
    "an anonymous hook's view": post("/hooks/yes", b"v"),
    "an invalid name": post("/a//b"),
    "a dot segment": post("/a/../b"),
    "the reserved namespace": post("/_/nothing"),
    "the reserved namespace encoded": post("/%5F/x"),
    "a batch": post("/_/publish", b'{"messages": [{"channel": "b/1", "data": "x"}]}'),
    "a bad batch": post("/_/publish", b"{"),
    "a batch path with a slash": post("/_/publish/"),
    "the health check": post("/_/health"),
    "a message too large": post("/big", b"x" * 70_000),
    "a declared size too large": post("/big", b"", "Content-Length: 999999999"),
    "a chunked body": post("/chunked/1", b"2\r\nhi\r\n0\r\n\r\n", "Transfer-Encoding: chunked"),
    "a cross-site browser": post("/users/1", b"x", "Origin: https://evil.example"),
    "a trusted origin": post("/users/1", b"x", "Origin: https://app.example"),
    "a same-origin fetch": post("/users/1", b"x", "Sec-Fetch-Site: same-origin"),
    "an idempotency key": post("/users/1", b"i", "Idempotency-Key: k-1"),
    "the same key again": post("/users/1", b"i", "Idempotency-Key: k-1"),
    "the key for another message": post("/users/1", b"j", "Idempotency-Key: k-1"),
    "a malformed idempotency key": post("/users/1", b"i", "Idempotency-Key: \x7fbad"),
    "an upgrade to WebSocket": post("/users/1", b"x", "Upgrade: websocket", "Connection: upgrade"),
    "an absolute-form target": post("http://127.0.0.1/users/1"),
    "HTTP/1.0 keeping alive": post("/users/1", b"x", "Connection: keep-alive").replace(
        b"HTTP/1.1", b"HTTP/1.0", 1
    ),
    "a closing client": post("/users/1", b"x", "Connection: close"),
    "a query past Tornado's field limit": post("/users/1?" + "&".join(["a=1"] * 1100)),
    "a token beside 1100 fields": post(f"/users/1?token={token(['users/'])}" + "&a=1" * 1100),
    "pipelined": post("/p/1", b"1") + post("/p/2", b"2") + post("/_/nothing") + post("/p/3"),
}

_VARIABLE = re.compile(rb"Date: [^\r]*\r\n|\"[0-9a-f]{1,32}:([0-9]+)\"")


def normalized(answer: bytes) -> bytes:
    """The answer less what differs between two servers: the Date and each position's epoch."""
    return _VARIABLE.sub(lambda m: b'"<epoch>:' + m.group(1) + b'"' if m.group(1) else b"", answer)


def answers(received: bytes) -> int:
    """How many whole answers ``received`` holds (each has a Content-Length)."""
    count = 0
    while (end := received.find(b"\r\n\r\n")) >= 0:
        length = re.search(rb"(?i)\r\ncontent-length: *([0-9]+)", received[:end])
        size = int(length.group(1)) if length else 0
        if len(received) < end + 4 + size:
            break
        received = received[end + 4 + size :]
        count += 1
    return count


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` whole, then read an answer per request, or until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    expected = data.count(b" HTTP/1.")
    received = b""
    try:
        while answers(received) < expected:
            chunk = await asyncio.wait_for(reader.read(1 << 16), 5)
            if not chunk:
                break
            received += chunk
    finally:
        writer.close()
        await writer.wait_closed()
    return received


CONFIGURATIONS = {
    "tokens": {"token_secret": SECRET, "trusted_origins": ("https://app.example",)},
    "a publish key": {"publish_key": KEY},
}


async def compare(configuration: dict[str, Any]) -> None:
    servers: list[asyncio.AbstractServer] = []
    nodes: list[Node] = []
    recorded: list[RecordingHooks] = []
    ports: list[int] = []
    try:
        for shortcut in (True, False):
            node = Node(MemoryBroker())
            await node.start()
            nodes.append(node)
            hooks = RecordingHooks()
            recorded.append(hooks)
            app = make_app(node, hooks=hooks, max_message_size=65536, **configuration)
            wire = WireServer(
                app, xheaders=True, shortcut=app.publish_shortcut if shortcut else None
            )
            loop = asyncio.get_running_loop()
            server = await loop.create_server(wire.protocol, sock=bound_socket())
            servers.append(server)
            ports.append(server.sockets[0].getsockname()[1])
        for name, data in REQUESTS.items():
            fast = normalized(await exchange(ports[0], data))
            routed = normalized(await exchange(ports[1], data))
            assert fast, name
            assert fast == routed, name
    finally:
        for server in servers:
            server.close()
            await server.wait_closed()
        for node in nodes:
            await node.stop()
    fast_hooks, routed_hooks = recorded
    assert fast_hooks.seen == routed_hooks.seen
    if "token_secret" in configuration:  # (With a publish key, only keyed POSTs get that far.)
        [view] = [seen for seen in fast_hooks.seen if seen[7] == "hooks/yes"]
        expected = ("POST", "/hooks/yes?q=1", "/hooks/yes", {"q": [b"1"]}, "abc", "10.0.0.9")
        assert view[:6] == expected
        assert view[8] == "ann"
        assert ("users/2", "ann") in {(seen[7], seen[8]) for seen in fast_hooks.seen}
    else:
        assert [seen[7] for seen in fast_hooks.seen] == ["keyed/1"]


@pytest.mark.parametrize("configuration", CONFIGURATIONS.values(), ids=CONFIGURATIONS.keys())
def test_every_post_is_answered_alike_with_and_without_the_shortcut(
    configuration: dict[str, Any],
) -> None:
    """Each POST gets the same status, headers and body, and hooks see the same request."""
    asyncio.run(asyncio.wait_for(compare(configuration), 60))
