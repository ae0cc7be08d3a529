"""The JS client (tornado-channels.js) run by Node, driven line by line from a test.

One Node process per client: the test writes commands (connect, suspend,
resume, close) as JSON lines to its stdin, and Node writes every callback
the client makes (status, message, recovery, close) as a JSON line to its
stdout, which ``NodeClient.events`` collects in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from pathlib import Path
from typing import Any

from .js_types import MODULE, npm
from .support import WAIT, until

#: Server-sent events for Node 20, which has none of its own (a test dependency only).
EVENTSOURCE = "eventsource@3.0.7"

DRIVER = """\
import { createInterface } from "node:readline";

const [moduleUrl, withEventSource] = process.argv.slice(2);
if (withEventSource === "1") {
  globalThis.EventSource = (await import("eventsource")).EventSource;
}
const { connect } = await import(moduleUrl);
const report = (event, value) => console.log(JSON.stringify({ event, ...value }));
let client = null;

// Sends every WebSocket to another port (where nothing listens, say).
function redirectWebSockets(port) {
  const Real = globalThis.WebSocket;
  globalThis.WebSocket = class extends Real {
    constructor(url, protocols) {
      const moved = new URL(url);
      moved.port = String(port);
      super(moved.href, protocols);
    }
  };
}

// A token provider whose first call fails, then gives "t<n>".
function flakyToken() {
  let calls = 0;
  return () => (++calls === 1 ? Promise.reject(new Error("nope")) : Promise.resolve("t" + calls));
}

for await (const line of createInterface({ input: process.stdin })) {
  const command = JSON.parse(line);
  if (command.do === "connect") {
    if (command.webSocketPort) redirectWebSockets(command.webSocketPort);
    const options = { ...command.options };
    if (command.flakyToken) options.token = flakyToken();
    client = connect(command.url, {
      ...options,
      onStatus: (status) => report("status", status),
      onMessage: (message) => report("message", message),
      onRecovery: (outcome) => report("recovery", outcome),
      onClose: (info) => report("close", info),
    });
  } else if (command.do === "view") {
    const { state, transport, position } = client;
    report("view", { state, transport, position });
  } else {
    client[command.do]();
    report("done", { command: command.do });
  }
}
// The test is done with this client (its stdin closed): stop, whatever is still open.
process.exit(0);
"""


def node_available() -> bool:
    """Whether Node and npm are installed."""
    return shutil.which("node") is not None and shutil.which("npm") is not None


def install_driver(directory: Path) -> Path:
    """Write the driver into ``directory`` with the pinned EventSource installed; return it."""
    (directory / "package.json").write_text('{"private": true, "type": "module"}\n')
    result = npm("install", EVENTSOURCE, cwd=directory)
    assert result.returncode == 0, result.stderr
    driver = directory / "driver.mjs"
    driver.write_text(DRIVER)
    return driver


class NodeClient:
    """One Node process running the client; ``events`` is everything it reported, in order."""

    def __init__(self, driver: Path, *, websocket: bool = True, eventsource: bool = True) -> None:
        self.driver = driver
        self.websocket = websocket
        self.eventsource = eventsource
        self.events: list[dict[str, Any]] = []
        self.process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> NodeClient:
        node = shutil.which("node")
        assert node is not None, "node is not installed"
        flags = ["--no-warnings", "--experimental-websocket"] if self.websocket else []
        self.process = await asyncio.create_subprocess_exec(
            node,
            *flags,
            str(self.driver),
            MODULE.as_uri(),
            "1" if self.eventsource else "0",
            cwd=self.driver.parent,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.close()  # The driver's loop ends, and Node with it.
        try:
            await asyncio.wait_for(self.process.wait(), WAIT)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            self.events.append(json.loads(line))

    async def command(self, do: str, **arguments: Any) -> None:
        """Send one command (``connect``, ``suspend``, ``resume``, ``close``, ``view``)."""
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"do": do, **arguments}).encode() + b"\n")
        await self.process.stdin.drain()

    async def connect(self, url: str, **arguments: Any) -> None:
        """Make the client in Node for ``url``; ``arguments`` as the driver reads them."""
        await self.command("connect", url=url, **arguments)

    async def view(self) -> dict[str, Any]:
        """The client's state, transport and position right now."""
        count = len(self.of("view"))
        await self.command("view")
        await until(lambda: len(self.of("view")) > count, what="the client's view")
        return self.of("view")[-1]

    def of(self, kind: str) -> list[dict[str, Any]]:
        """The events of one kind (``status``, ``message``, ``recovery``, ``close``), in order."""
        return [event for event in self.events if event["event"] == kind]

    def states(self) -> list[str]:
        """Every state the client entered, in order."""
        return [status["state"] for status in self.of("status")]

    def data(self) -> list[str]:
        """The data of every message delivered, in order."""
        return [message.get("data", "") for message in self.of("message")]

    async def until_states(self, *expected: str, timeout: float = WAIT) -> None:
        """Wait until the states entered end with ``expected``."""
        want = list(expected)
        await until(
            lambda: self.states()[-len(want) :] == want,
            timeout=timeout,
            what=f"states ending {want}, not {self.states()}",
        )
