"""permessage-deflate against a real process, with real clients, all byte-exact.

Raw sockets (to see RSV1 and the exact frame bytes), Python ``websockets``,
Node's ``ws`` (installed from npm for this module) and headless Chromium.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from tornado_channels.core.inbound import mask

from ..helpers import WAIT, Browser, ServerProcess, chromium_path, post, run
from ..helpers.support import healthy_server

pytestmark = pytest.mark.processes

#: A realistic JSON message, about 2 KiB: well above the default threshold (256).
BIG = json.dumps(
    [
        {"id": i, "user": f"user{i}", "email": f"user{i}@example.com", "active": i % 3 == 0}
        for i in range(30)
    ]
).encode()
SMALL = b"hi there"
BINARY = bytes(range(256)) * 2 + b"\xff" * 600  # not UTF-8: a binary frame, compressible
PAYLOADS = [BIG, SMALL, BINARY, b"\xfe\x00"]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """One process on its embedded broker, compression on by default."""
    yield from healthy_server()


class RawClient:
    """A WebSocket client by hand, to see the frames themselves (RSV1, the exact bytes)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.extensions = ""

    @classmethod
    async def open(cls, port: int, path: str, offer: str | None) -> RawClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        extra = f"Sec-WebSocket-Extensions: {offer}\r\n" if offer else ""
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\n{extra}\r\n".encode()
        )
        client = cls(reader, writer)
        status = await asyncio.wait_for(reader.readline(), WAIT)
        assert b" 101 " in status, status
        while (line := await asyncio.wait_for(reader.readline(), WAIT)) != b"\r\n":
            name, _, value = line.decode().partition(":")
            if name.lower() == "sec-websocket-extensions":
                client.extensions = value.strip()
        return client

    async def frame(self) -> bytes:
        """The next whole frame, header included, exactly as it came."""
        head = await asyncio.wait_for(self.reader.readexactly(2), WAIT)
        length, extra = head[1] & 0x7F, b""
        if length == 126:
            extra = await self.reader.readexactly(2)
            (length,) = struct.unpack("!H", extra)
        elif length == 127:
            extra = await self.reader.readexactly(8)
            (length,) = struct.unpack("!Q", extra)
        return head + extra + await asyncio.wait_for(self.reader.readexactly(length), WAIT)

    def send(self, payload: bytes, first: int) -> None:
        """Send one masked frame with first byte ``first`` (FIN, RSV1, opcode)."""
        key = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = bytes([first, 0x80 | length])
        elif length <= 0xFFFF:
            header = bytes([first, 0x80 | 126]) + struct.pack("!H", length)
        else:
            header = bytes([first, 0x80 | 127]) + struct.pack("!Q", length)
        self.writer.write(header + key + mask(key, payload))

    def close(self) -> None:
        self.writer.close()


def payload_of(frame: bytes) -> bytes:
    length = frame[1] & 0x7F
    return frame[{126: 4, 127: 10}.get(length, 2) :]


def inflated(frame: bytes) -> bytes:
    """A frame's message: inflated when RSV1 says it is compressed."""
    data = payload_of(frame)
    if frame[0] & 0x40:
        return zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")
    return data


def test_every_subscriber_gets_the_same_compressed_bytes(server: ServerProcess) -> None:
    """Twenty deflating subscribers get the same frames, RSV1 at the threshold up; others plain."""

    async def scenario() -> None:
        offer = "permessage-deflate; client_max_window_bits"
        many = [await RawClient.open(server.port, "/same", offer) for _ in range(20)]
        plain = await RawClient.open(server.port, "/same", None)
        assert many[0].extensions == "permessage-deflate; server_no_context_takeover"
        assert plain.extensions == ""
        try:
            for payload in PAYLOADS:
                assert (await post(server.url + "/same", payload)).code == 202
                frames = [await client.frame() for client in many]
                assert len(set(frames)) == 1, "subscribers got different bytes"
                compressed = bool(frames[0][0] & 0x40)
                assert compressed == (len(payload) >= 256)
                assert inflated(frames[0]) == payload
                opcode = frames[0][0] & 0x0F
                assert opcode == (0x1 if payload in (BIG, SMALL) else 0x2)
                unpacked = await plain.frame()
                assert not unpacked[0] & 0x40
                assert payload_of(unpacked) == payload
            big_frame = len(frames[0])
            assert big_frame < len(BINARY)
        finally:
            for client in [*many, plain]:
                client.close()

    run(scenario())


def test_python_websockets_gets_exact_messages_and_is_echoed(server: ServerProcess) -> None:
    """Python websockets gets every payload exactly, and its own compressed messages back."""

    async def scenario() -> None:
        url = f"{server.ws_url}/py"
        async with websockets.connect(url) as ws, websockets.connect(url) as other:
            assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
            for payload in PAYLOADS:
                assert (await post(server.url + "/py", payload)).code == 202
                for client in (ws, other):
                    got = await asyncio.wait_for(client.recv(), WAIT)
                    as_bytes = got.encode() if isinstance(got, str) else got
                    assert as_bytes == payload
                    assert isinstance(got, str) == (payload in (BIG, SMALL))
            await ws.send(BIG.decode())  # Sent compressed: websockets deflates by default.
            for client in (ws, other):
                assert await asyncio.wait_for(client.recv(), WAIT) == BIG.decode()

    run(scenario())


def test_a_deflate_bomb_closes_1009(server: ServerProcess) -> None:
    """256 KiB that inflate to 256 MiB (the maximum is 1 MiB) close with 1009 at once."""

    async def scenario() -> None:
        client = await RawClient.open(server.port, "/bomb", "permessage-deflate")
        compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
        chunk = bytes(1 << 20)
        bomb = b"".join(compressor.compress(chunk) for _ in range(256))
        bomb += compressor.flush(zlib.Z_SYNC_FLUSH)[:-4]
        assert len(bomb) < 300 << 10
        client.send(bomb, 0x80 | 0x40 | 0x2)
        try:
            close = await client.frame()
        finally:
            client.close()
        assert close[0] & 0x0F == 0x8
        assert struct.unpack("!H", payload_of(close)[:2])[0] == 1009

    run(scenario())


def test_compression_off_answers_without_the_extension() -> None:
    """With --compression off an offer is ignored and every frame is plain."""
    process = ServerProcess("--compression", "off").start().wait_healthy()

    async def scenario() -> None:
        client = await RawClient.open(process.port, "/off", "permessage-deflate")
        try:
            assert client.extensions == ""
            assert (await post(process.url + "/off", BIG)).code == 202
            frame = await client.frame()
            assert not frame[0] & 0x40
            assert payload_of(frame) == BIG
        finally:
            client.close()

    try:
        run(scenario())
    finally:
        process.terminate()
        process.log.unlink(missing_ok=True)


# --- Node's ws --------------------------------------------------------------------------

NODE_CLIENT = r"""
const WebSocket = require("ws");
const [url, count, expected] = [process.argv[2], +process.argv[3], +process.argv[4]];
let open = 0, done = 0;
const got = [];
for (let i = 0; i < count; i++) {
  const ws = new WebSocket(url);  // perMessageDeflate is on by default
  got.push([]);
  ws.on("upgrade", (res) => { got[i].extensions = res.headers["sec-websocket-extensions"]; });
  ws.on("open", () => { if (++open === count) console.log(JSON.stringify({ready: true})); });
  ws.on("message", (data, isBinary) => {
    got[i].push({binary: isBinary, data: Buffer.from(data).toString("base64")});
    if (got[i].length === expected) {
      if (i === 0) ws.send(got[i][0].data);  // a compressed message from ws, echoed back
      if (++done === count) {
        console.log(JSON.stringify({extensions: got.map((g) => g.extensions),
                                    got: got.map((g) => g.slice())}));
        process.exit(0);
      }
    }
  });
}
setTimeout(() => { console.error("timed out"); process.exit(2); }, 20000);
"""


@pytest.fixture(scope="module")
def node_ws() -> Iterator[Path]:
    """A directory with Node's ws installed from npm (for this module only)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed")
    directory = Path(tempfile.mkdtemp(prefix="tc-node-ws-"))
    try:
        result = subprocess.run(
            ["npm", "install", "--silent", "--no-audit", "--no-fund", "ws@8"],
            cwd=directory,
            capture_output=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        (directory / "client.js").write_text(NODE_CLIENT)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_node_ws_clients_get_exact_messages(server: ServerProcess, node_ws: Path) -> None:
    """Five Node ws clients negotiate deflate and get every payload exactly, text and binary."""

    async def scenario() -> None:
        process = await asyncio.create_subprocess_exec(
            "node",
            str(node_ws / "client.js"),
            f"{server.ws_url}/node",
            "5",
            str(len(PAYLOADS)),
            cwd=node_ws,
            stdout=asyncio.subprocess.PIPE,
        )
        try:
            assert process.stdout is not None
            ready = await asyncio.wait_for(process.stdout.readline(), WAIT)
            assert json.loads(ready) == {"ready": True}
            for payload in PAYLOADS:
                assert (await post(server.url + "/node", payload)).code == 202
            report = json.loads(await asyncio.wait_for(process.stdout.readline(), WAIT))
            assert await asyncio.wait_for(process.wait(), WAIT) == 0
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        for extensions in report["extensions"]:
            assert extensions.startswith("permessage-deflate; server_no_context_takeover")
        for messages in report["got"]:
            assert [base64.b64decode(m["data"]) for m in messages] == PAYLOADS
            assert [m["binary"] for m in messages] == [False, False, True, True]

    run(scenario())


# --- Chromium ----------------------------------------------------------------------------

CHROMIUM_CLIENT = """
window.__got = []; window.__ext = null;
const ws = new WebSocket(location.origin.replace("http", "ws") + "/browser");
ws.binaryType = "arraybuffer";
ws.onopen = () => { window.__ext = ws.extensions; };
ws.onmessage = (m) => {
  const bytes = typeof m.data === "string" ? new TextEncoder().encode(m.data)
                                           : new Uint8Array(m.data);
  window.__got.push({text: typeof m.data === "string", bytes: Array.from(bytes)});
};
true
"""


@pytest.mark.skipif(chromium_path() is None, reason="chromium is not installed")
def test_chromium_gets_exact_messages_compressed(server: ServerProcess) -> None:
    """Chromium (which always offers permessage-deflate) gets every payload exactly."""

    async def scenario() -> None:
        async with Browser() as browser:
            await browser.goto(server.url + "/")
            await browser.evaluate(CHROMIUM_CLIENT)
            await browser.until("window.__ext !== null")
            assert (await browser.evaluate("window.__ext")).startswith(
                "permessage-deflate; server_no_context_takeover"
            )
            for payload in PAYLOADS:
                assert (await post(server.url + "/browser", payload)).code == 202
            await browser.until(f"window.__got.length === {len(PAYLOADS)}")
            got = await browser.evaluate("window.__got")
            assert [bytes(m["bytes"]) for m in got] == PAYLOADS
            assert [m["text"] for m in got] == [True, True, False, False]
            assert browser.errors() == []

    run(scenario())
