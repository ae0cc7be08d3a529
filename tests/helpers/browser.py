"""A headless Chromium driven over the DevTools protocol, for tests of the pages."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import time
from typing import Any

from tornado.websocket import WebSocketClientConnection, websocket_connect

from .support import WAIT, free_port, get


def chromium_path() -> str | None:
    """Debian's chromium, if installed."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Browser:
    """One headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self) -> None:
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="tc-chromium-")
        self.process: asyncio.subprocess.Process | None = None
        self.devtools: WebSocketClientConnection | None = None
        self.events: list[dict[str, Any]] = []
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._next_id = 0
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> Browser:
        binary = chromium_path()
        assert binary, "chromium is not installed"
        # Flags as the machine's notes say: no background networking on a closed network.
        self.process = await asyncio.create_subprocess_exec(
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={self.profile}",
            f"--remote-debugging-port={self.port}",
            "about:blank",
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Chromium leaves a directory for its singleton socket in TMPDIR:
            # inside the profile, it goes when the profile is removed.
            env={**os.environ, "TMPDIR": self.profile},
        )
        tabs: list[dict[str, Any]] = []
        for _ in range(int(WAIT / 0.1)):
            try:
                response = await get(f"http://127.0.0.1:{self.port}/json")
            except OSError:  # Not listening yet.
                await asyncio.sleep(0.1)
                continue
            if response.code == 200:
                tabs = [tab for tab in json.loads(response.body) if tab["type"] == "page"]
                if tabs:
                    break
            await asyncio.sleep(0.1)
        assert tabs, "chromium did not open its DevTools endpoint"
        self.devtools = await websocket_connect(tabs[0]["webSocketDebuggerUrl"])
        self._reader = asyncio.ensure_future(self._read())
        for domain in ("Runtime.enable", "Page.enable", "Network.enable"):
            await self.call(domain)
        # Any alert() means a script we did not write ran.
        await self.call(
            "Page.addScriptToEvaluateOnNewDocument",
            source="window.alert = (x) => { window.__alerts = (window.__alerts || 0) + 1; };",
        )
        return self

    async def _read(self) -> None:
        assert self.devtools is not None
        while (raw := await self.devtools.read_message()) is not None:
            message = json.loads(raw)
            waiter = self._pending.pop(message.get("id", -1), None)
            if waiter is not None:
                waiter.set_result(message)
            else:
                self.events.append(message)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one DevTools command and return its result."""
        assert self.devtools is not None
        self._next_id += 1
        waiter = asyncio.get_running_loop().create_future()
        self._pending[self._next_id] = waiter
        await self.devtools.write_message(
            json.dumps({"id": self._next_id, "method": method, "params": params})
        )
        reply = await asyncio.wait_for(waiter, WAIT)
        assert "error" not in reply, reply
        return reply["result"]  # type: ignore[no-any-return]

    async def goto(self, url: str) -> None:
        """Load ``url`` and wait for it."""
        await self.call("Page.navigate", url=url)
        await self.until("document.readyState === 'complete'")

    async def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page."""
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    async def until(self, expression: str, timeout: float = WAIT) -> None:
        """Wait until a JavaScript expression is truthy in the page."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not await self.evaluate(expression):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"page never satisfied: {expression}")
            await asyncio.sleep(0.05)

    def requested_urls(self) -> list[str]:
        """Every URL the page asked the network for."""
        return [
            event["params"]["request"]["url"]
            for event in self.events
            if event.get("method") == "Network.requestWillBeSent"
        ]

    def errors(self) -> list[dict[str, Any]]:
        """Uncaught exceptions and console errors (CSP violations included)."""
        return [
            event["params"]
            for event in self.events
            if event.get("method") == "Runtime.exceptionThrown"
            or (
                event.get("method") == "Runtime.consoleAPICalled"
                and event["params"]["type"] == "error"
            )
        ]

    async def __aenter__(self) -> Browser:
        try:
            return await self.start()
        except BaseException:
            await self.close()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self.devtools is not None:
            self.devtools.close()
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=WAIT)
            if not self._reader.done():
                self._reader.cancel()
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), WAIT)
            except asyncio.TimeoutError:
                self.process.kill()
                await self.process.wait()
        await asyncio.to_thread(_remove_profile, self.profile)


def _remove_profile(path: str) -> None:
    # Chromium's helper processes may still be writing the profile for a
    # moment after the browser exits: retry, within a bound.
    for _ in range(50):
        shutil.rmtree(path, ignore_errors=True)
        if not os.path.exists(path):
            return
        time.sleep(0.1)
