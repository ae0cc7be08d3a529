"""The README's embedding example runs as written, and does what the README says it does."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tornado.httpclient import HTTPRequest

from ..helpers import ROOT, closed, connect, free_port, get, post, receive, run, wait_for_port

pytestmark = pytest.mark.processes


def readme_example() -> str:
    """The Python block of the README's "Inside your own Tornado application" section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Inside your own Tornado application", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "the README's embedding section has no Python example"
    return match.group(1)


@pytest.fixture
def example() -> Iterator[int]:
    """The example, saved as a file and run with its main(port) on a free port."""
    port = free_port()
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "example.py").write_text(readme_example())
        process = subprocess.Popen(
            [sys.executable, "-c", f"import asyncio, example; asyncio.run(example.main({port}))"],
            cwd=directory,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port(port)
            yield port
        finally:
            process.terminate()
            output, _ = process.communicate(timeout=10)
            assert b"Traceback" not in output, output.decode(errors="replace")


def test_the_readme_example_serves_channels_under_its_prefix_with_its_hooks(example: int) -> None:
    """Its home page, subscribing, a keyed publish, a refused one, and the no-spam hook."""
    base, ws_base = f"http://127.0.0.1:{example}", f"ws://127.0.0.1:{example}"

    async def scenario() -> None:
        home = await get(base + "/")
        assert b"My own page" in home.body
        health = await get(base + "/live/_/health")
        assert json.loads(health.body)["connected"] is True
        listener = await connect(ws_base + "/live/users/1")
        keyed = await post(
            base + "/live/users/1", b"hello", headers={"Authorization": "Bearer s3cret"}
        )
        assert keyed.code == 202
        assert await receive(listener) == "hello"
        assert (await post(base + "/live/users/1", b"no key")).code == 403
        await listener.write_message("  padded  ")
        assert await receive(listener) == "padded"  # the hook stripped it
        await listener.write_message("buy spam now")
        code, reason = await closed(listener)
        assert (code, reason) == (1008, "no spam")
        listener.close()
        refused = await get(base + "/live/private/x", headers={**HANDSHAKE, "X-User": "mallory"})
        assert refused.code == 403
        assert json.loads(refused.body)["error"] == "forbidden"

    run(scenario())


HANDSHAKE = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version": "13",
}


def test_the_readme_hooks_keep_private_channels_from_every_subtree(example: int) -> None:
    """/, private/ and private/x are refused (streams, presence too); public/x and public/ work."""
    base, ws_base = f"http://127.0.0.1:{example}", f"ws://127.0.0.1:{example}"
    key = {"Authorization": "Bearer s3cret"}

    async def scenario() -> None:
        for path in ("/live/", "/live/private/", "/live/private/x"):
            refused = await get(base + path, headers={**HANDSHAKE, "X-User": "mallory"})
            assert refused.code == 403, (path, refused.body)
            assert json.loads(refused.body)["error"] == "forbidden"
        stream = await get(base + "/live/", headers={"Accept": "text/event-stream"})
        assert stream.code == 403, stream.body
        assert (await get(base + "/live/_/presence/")).code == 403
        channel = await connect(ws_base + "/live/public/x")
        subtree = await connect(ws_base + "/live/public/")
        assert (await post(base + "/live/public/x", b"news", headers=key)).code == 202
        assert await receive(channel) == "news"
        assert await receive(subtree) == "news"
        # The private rule is the admin's to pass, for subtrees as for channels.
        everything = await connect(HTTPRequest(ws_base + "/live/", headers={"X-User": "admin"}))
        assert (await post(base + "/live/private/x", b"secret", headers=key)).code == 202
        assert await receive(everything) == "secret"
        for client in (channel, subtree, everything):
            client.close()

    run(scenario())
