"""The standalone server's HTTP wire, from raw sockets: every refusal is answered, in JSON.

Clients here behave as real ones do: they send a whole body before reading,
pipeline requests, send HEAD, oversized heads and raw bytes in URLs.
"""

from __future__ import annotations

import asyncio
import json
import signal
import struct
from collections.abc import Iterator

import pytest

from tornado_channels.web.connection import CLOSE_WAIT

from ..helpers import (
    ServerProcess,
    connect,
    hang_up,
    post,
    raw_exchange,
    raw_websocket,
    receive,
    run,
)
from ..helpers.support import WAIT, healthy_server, rss_mib, until

pytestmark = pytest.mark.processes

MiB = 1 << 20


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """One process on its embedded broker, shared by the tests that only talk to it."""
    yield from healthy_server("--max-buffered-bytes", str(256 << 10))


def request(method: str, path: str, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    if body or method == "POST":
        lines.append(f"Content-Length: {len(body)}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def assert_json_error(response: object, status: int, error: str) -> None:
    assert getattr(response, "status", None) == status, response
    assert response.headers["content-type"].startswith("application/json")  # type: ignore[attr-defined]
    assert response.json()["error"] == error, response  # type: ignore[attr-defined]


# --- Methods ---------------------------------------------------------------------


def test_head_of_the_publish_endpoint_is_a_405_without_a_body(server: ServerProcess) -> None:
    """HEAD /_/publish answers 405 with Allow: POST, no body, and the connection lives on."""
    raw = request("HEAD", "/_/publish") + request("GET", "/_/health")
    responses, _ = raw_exchange(server.port, raw, until_close=False, expect=2, heads=[0])
    head = responses[0]
    assert head.status == 405
    assert head.headers["allow"] == "POST"
    assert head.body == b""
    assert "close" not in head.headers.get("connection", "")


def test_every_405_says_what_is_allowed(server: ServerProcess) -> None:
    """Each 405 carries Allow and a JSON body naming the problem."""
    for method, path, allowed in [
        ("PUT", "/users/1", "GET, HEAD, POST"),
        ("DELETE", "/users/1", "GET, HEAD, POST"),
        ("GET", "/_/publish", "POST"),
        ("POST", "/_/health", "GET, HEAD"),
        ("PUT", "/_/stats", "GET, HEAD"),
    ]:
        responses, _ = raw_exchange(server.port, request(method, path), until_close=False)
        assert_json_error(responses[0], 405, "method_not_allowed")
        assert responses[0].headers["allow"] == allowed, (method, path)


def test_head_of_a_page_answers_like_get_without_the_body(server: ServerProcess) -> None:
    """HEAD /users/1 has GET's status and headers, and no body."""
    get_response = raw_exchange(server.port, request("GET", "/users/1"), until_close=False)[0][0]
    head_response = raw_exchange(
        server.port, request("HEAD", "/users/1"), until_close=False, heads=[0]
    )[0][0]
    assert get_response.status == head_response.status == 200
    assert get_response.body
    assert head_response.body == b""
    for name in ("content-type", "content-length", "content-security-policy"):
        assert head_response.headers[name] == get_response.headers[name]


def test_head_of_the_health_check_answers_without_a_body(server: ServerProcess) -> None:
    """HEAD /_/health is a 200 with no body."""
    response = raw_exchange(
        server.port, request("HEAD", "/_/health"), until_close=False, heads=[0]
    )[0][0]
    assert response.status == 200
    assert response.body == b""


# --- Malformed requests: refused in JSON ------------------------------------------


def test_a_request_head_over_64_kib_gets_431(server: ServerProcess) -> None:
    """A 64 KiB header is answered 431 with a JSON body, not dropped."""
    raw = request("GET", "/users/1", X_Big="x" * (64 << 10))
    responses, closed = raw_exchange(server.port, raw)
    assert_json_error(responses[0], 431, "request_header_too_large")
    assert closed


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a\x7fb HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: x\r\nX-Bad: a\x00b\r\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n",
    ],
    ids=["SOH in URL", "DEL in URL", "space in URL", "NUL in header", "bad length"],
)
def test_control_characters_get_a_json_400(server: ServerProcess, raw: bytes) -> None:
    """A raw control character in the URL or a header is a 400 with a JSON body."""
    responses, closed = raw_exchange(server.port, raw)
    assert_json_error(responses[0], 400, "bad_request")
    assert len(responses) == 1
    assert closed


@pytest.mark.parametrize(
    "raw",
    [
        b"POST /a HTTP/1.1\r\nHost: a b\r\nContent-Length: 2\r\n\r\nhi",
        b"POST /a HTTP/1.1\r\nHost: a,b\r\nContent-Length: 2\r\n\r\nhi",
        b"GET /_/health HTTP/1.1\r\nHost: a/b\r\n\r\n",
        b"GET /_/health?"
        + b"&".join(b"a%d=1" % i for i in range(1100))
        + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
    ids=["space in Host (publish)", "comma in Host (publish)", "slash in Host", "huge query"],
)
def test_what_tornados_request_would_refuse_is_a_json_400_not_a_500(
    server: ServerProcess, raw: bytes
) -> None:
    """A Host or query Tornado's request refuses is the client's fault: 400, and no traceback."""
    responses, _ = raw_exchange(server.port, raw)
    assert_json_error(responses[0], 400, "bad_request")
    assert "Traceback" not in server.output()


def test_an_unsupported_transfer_coding_gets_501(server: ServerProcess) -> None:
    """Transfer-Encoding other than chunked is refused with 501, as nginx does."""
    raw = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"
    responses, _ = raw_exchange(server.port, raw)
    assert_json_error(responses[0], 501, "not_implemented")


# --- Refusals before the body: the answer always arrives -----------------------------


@pytest.mark.parametrize("size", [8 * MiB, 2 * MiB, MiB + 1])
def test_a_body_first_client_always_gets_its_413(server: ServerProcess, size: int) -> None:
    """A client that sends a too-large body before reading gets the 413, never a reset."""
    body = b"x" * size
    for _ in range(6):
        responses, closed = raw_exchange(server.port, request("POST", "/big", body), timeout=10)
        assert responses, "no answer (reset?)"
        assert_json_error(responses[0], 413, "message_too_large")
        assert responses[0].headers["connection"] == "close"
        assert closed


def test_a_refusal_of_a_small_body_keeps_the_connection_and_answers_what_follows(
    server: ServerProcess,
) -> None:
    """A pipelined request behind a refused one is answered; the refusal keeps the connection."""
    raw = request("POST", "/a//b", b"small body") + request("GET", "/_/health")
    responses, _ = raw_exchange(server.port, raw, until_close=False, expect=2)
    assert_json_error(responses[0], 400, "invalid_channel")
    assert "connection" not in responses[0].headers
    assert responses[1].status == 200


def test_pipelined_publishes_are_answered_in_order(server: ServerProcess) -> None:
    """Ten POSTs sent at once come back as ten answers, in order."""
    raw = b"".join(request("POST", f"/pipe/{n}", f"m{n}".encode()) for n in range(10))
    responses, _ = raw_exchange(server.port, raw, until_close=False, expect=10)
    assert [r.status for r in responses] == [202] * 10
    assert [r.json()["channel"] for r in responses] == [f"pipe/{n}" for n in range(10)]


def test_expect_continue_is_invited_only_when_the_request_can_go_on(server: ServerProcess) -> None:
    """A 100 Continue comes for an acceptable POST; a refused one gets its answer instead."""

    async def scenario() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /cont HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        assert await asyncio.wait_for(reader.readline(), 5) == b"HTTP/1.1 100 Continue\r\n"
        assert await reader.readline() == b"\r\n"
        writer.write(b"hello")
        assert b" 202 " in await asyncio.wait_for(reader.readline(), 5)
        writer.close()
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /cont HTTP/1.1\r\nHost: x\r\nContent-Length: 9999999\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        assert b" 413 " in await asyncio.wait_for(reader.readline(), 5)
        writer.close()

    run(scenario())


def test_a_chunked_publish_is_read_whole(server: ServerProcess) -> None:
    """A chunked body (with a trailer) publishes its bytes joined."""

    async def scenario() -> None:
        ws = await connect(server.ws_url + "/chunked")
        raw = (
            b"POST /chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nHello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n"
        )
        responses, _ = await asyncio.to_thread(raw_exchange, server.port, raw, until_close=False)
        assert responses[0].status == 202
        assert await receive(ws) == "Hello, world"
        await hang_up(ws)

    run(scenario())


# --- Names: raw UTF-8 reads like its percent-encoded form -----------------------------


def test_raw_utf8_in_a_url_is_a_json_400_and_its_percent_encoded_form_a_channel(
    server: ServerProcess,
) -> None:
    """POST /café with raw UTF-8 bytes is a JSON 400 (RFC 9112); /caf%C3%A9 reaches café."""

    async def scenario() -> None:
        ws = await connect(server.ws_url + "/caf%C3%A9")
        raw = "POST /café HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi".encode()
        responses, _ = await asyncio.to_thread(raw_exchange, server.port, raw)
        assert_json_error(responses[0], 400, "bad_request")
        assert "target" in responses[0].json()["message"]
        raw = b"POST /caf%C3%A9 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
        responses, _ = await asyncio.to_thread(raw_exchange, server.port, raw, until_close=False)
        assert responses[0].status == 202, responses
        assert responses[0].json()["channel"] == "café"
        assert await receive(ws) == "hi"
        await hang_up(ws)

    run(scenario())


@pytest.mark.parametrize(
    ("path", "error"),
    [(b"/a\xffb", "bad_request"), (b"/a%FFb", "invalid_channel"), (b"/caf\xc3", "bad_request")],
)
def test_bytes_that_are_not_utf8_are_refused_raw_or_encoded(
    server: ServerProcess, path: bytes, error: str
) -> None:
    """Invalid UTF-8 in a name is a 400, raw (a malformed target) or percent-encoded."""
    raw = b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx"
    responses, _ = raw_exchange(server.port, raw, until_close=error == "bad_request")
    assert_json_error(responses[0], 400, error)


def test_the_reserved_namespace_is_refused_once_decoded_on_every_edge(
    server: ServerProcess,
) -> None:
    """/%5F/x is /_/x: refused for POST, page, SSE and WebSocket; a batch naming _/x too."""
    for raw in [
        request("POST", "/%5F/x", b"m"),
        request("GET", "/%5F/x"),
        request("GET", "/%5f/x", Accept="text/event-stream"),
        request(
            "GET",
            "/%5F/x",
            Upgrade="websocket",
            Connection="Upgrade",
            Sec_WebSocket_Key="dGhlIHNhbXBsZSBub25jZQ==",
            Sec_WebSocket_Version="13",
        ),
        request(
            "POST",
            "/_/publish",
            json.dumps({"messages": [{"channel": "_/x", "data": "m"}]}).encode(),
        ),
        request("POST", "/%5F/", b"m"),
    ]:
        responses, _ = raw_exchange(server.port, raw, until_close=False)
        assert_json_error(responses[0], 400, "invalid_channel")
        assert "reserved" in responses[0].json()["message"]


# --- A slow consumer learns why it was closed ------------------------------------------


def test_a_slow_consumer_that_resumes_reading_gets_its_4008(server: ServerProcess) -> None:
    """Frames not yet started are dropped: the 4008 follows what was already in flight."""

    async def scenario() -> None:
        reader, writer = await raw_websocket(server.port, "/flood")
        # Stop reading: the kernel's buffers fill, then the server's.
        transport = writer.transport
        transport.pause_reading()  # type: ignore[attr-defined]
        payload = b"x" * (64 << 10)
        for _ in range(200):  # 12.5 MiB, against a bound of 256 KiB
            response = await post(server.url + "/flood", payload)
            assert response.code == 202
        # Longer than the server waits for a close reply once its close has left.
        await asyncio.sleep(CLOSE_WAIT + 1)
        transport.resume_reading()  # type: ignore[attr-defined]
        read = 0
        while True:
            first, second = await asyncio.wait_for(reader.readexactly(2), 10)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await reader.readexactly(8))
            data = await asyncio.wait_for(reader.readexactly(length), 10)
            read += length
            if first & 0x0F == 0x8:
                (code,) = struct.unpack("!H", data[:2])
                break
        assert code == 4008
        # Far less than the flood: what was in flight, not everything queued.
        assert read < 6 * MiB, read
        writer.close()

    run(scenario(), timeout=90)


# --- Flow control: answers a client does not read stop the reading ----------------


def flood_without_reading(port: int, one: bytes, count: int) -> int:
    """Pipeline ``count`` copies of ``one`` on a socket that never reads; bytes sent.

    The receive buffer is small (4 KiB), as a hostile client sets it; sending
    stops once the server has stopped taking requests for a second.
    """
    import socket
    import time

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(1.0)
    batch = one * 1000
    sent = 0
    deadline = time.monotonic() + 30
    try:
        for _ in range(count // 1000):
            if time.monotonic() > deadline:
                break
            try:
                sock.sendall(batch)
            except TimeoutError:
                break  # The server stopped reading: what it holds is bounded.
            sent += len(batch)
    finally:
        # Held open (not closed) while the caller measures; closed by the caller.
        flood_without_reading.socket = sock  # type: ignore[attr-defined]
    return sent


@pytest.mark.parametrize(
    "one",
    [
        b"POST /a%00b HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
        b"POST /flooded HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
    ],
    ids=["refusals", "valid posts"],
)
def test_pipelined_answers_a_client_never_reads_do_not_grow_memory(
    server: ServerProcess, one: bytes
) -> None:
    """120k pipelined POSTs (400s or 202s) to a client that never reads grow RSS under 8 MiB."""
    assert server.process is not None
    pid = server.process.pid
    for _ in range(3):  # Warm: the code and buffers the flood uses are paged in.
        raw_exchange(server.port, one * 200, until_close=False)
    before = rss_mib(pid)
    flood_without_reading(server.port, one, 120_000)
    sock = flood_without_reading.socket  # type: ignore[attr-defined]
    try:
        grown = rss_mib(pid) - before
        # The server still serves everyone else meanwhile.
        responses, _ = raw_exchange(server.port, request("POST", "/other", b"y"), until_close=False)
        assert responses[0].status == 202, responses
    finally:
        sock.close()
    assert grown < 8, f"RSS grew {grown:.1f} MiB"


def test_connect_is_a_json_405_that_ends_the_connection(server: ServerProcess) -> None:
    """CONNECT asks to switch protocols: refused in JSON, and the connection closes after it."""
    raw = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01"
    responses, closed = raw_exchange(server.port, raw)
    assert_json_error(responses[0], 405, "method_not_allowed")
    assert responses[0].json()["message"] == "CONNECT not allowed here"
    assert closed


def test_a_stopping_server_answers_on_a_kept_alive_connection_left_to_its_client() -> None:
    """With --keepalive-grace, a stopping server answers on an idle connection, then ends it."""
    process = ServerProcess("--keepalive-grace", "4").start().wait_healthy()
    try:

        async def scenario() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", process.port)
            try:
                writer.write(request("POST", "/grace", b"before"))
                assert b" 202 " in await asyncio.wait_for(reader.readuntil(b"}"), WAIT)
                process.send_signal(signal.SIGTERM)
                # The server is past accepting and draining, holding this connection open.
                await until(lambda: "for their clients to close" in process.output())
                writer.write(request("POST", "/grace", b"during"))
                return await asyncio.wait_for(reader.read(), WAIT)  # Up to the server's FIN.
            finally:
                writer.close()

        answer = run(scenario())
        assert answer.startswith(b"HTTP/1.1 202 "), answer
        assert b"\r\nConnection: close\r\n" in answer, answer
        assert process.wait_exit() == 0
    finally:
        process.terminate()
        process.log.unlink(missing_ok=True)
