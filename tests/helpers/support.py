"""Real components for tests: private Redis servers, server processes, clients.

Nothing here touches the shared Redis on 6379: every Redis is private, on a
free port, and every process is ended by the PID it was started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Collection, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.websocket import WebSocketClientConnection, websocket_connect

T = TypeVar("T")

#: Default bound on any single wait in the tests.
WAIT = 10.0
#: How long silence must last to count as "not delivered".
SILENCE = 0.5


#: Test ports are taken below the kernel's ephemeral range, which outgoing
#: connections (nginx's to its upstreams, the tests' own) take at any moment:
#: a port chosen there (``bind(0)``) can be taken between choosing and binding.
LOWEST_PORT = 10000


def ephemeral_start() -> int:
    """The first port of the kernel's ephemeral range (``ip_local_port_range``)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            return int(ranges.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default.


# Ports this test process handed out: never twice, even once released.
_handed_out: set[int] = set()


def port_is_free(port: int) -> bool:
    """Whether ``port`` of 127.0.0.1 can be bound now (and was not handed out before)."""
    if port in _handed_out:
        return False
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` in MiB."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def bound_socket() -> socket.socket:
    """A TCP socket bound to a free port of 127.0.0.1 below the ephemeral range (not listening).

    For listeners a test holds itself: bound at once, so nothing can take the
    port in between, and retried should another process bind it first.
    """
    for _ in range(20):
        sock = socket.socket()
        try:
            sock.bind(("127.0.0.1", free_port()))
        except OSError:
            sock.close()
            continue
        return sock
    raise AssertionError("no free port to bind")


def bind_unused_port(
    reuse_port: bool = False, address: str = "127.0.0.1"
) -> tuple[socket.socket, int]:
    """``tornado.testing.bind_unused_port``, below the ephemeral range (see tests/conftest.py)."""
    sock = bound_socket()
    sock.setblocking(False)
    sock.listen(128)
    return sock, sock.getsockname()[1]


#: A Redis Cluster node's bus port is its port + BUS_OFFSET (Redis's own rule): cluster nodes
#: take their ports from CLUSTER_PORTS, and no other port is ever taken from the band their
#: bus ports fall in.
BUS_OFFSET = 10000
CLUSTER_PORTS = (LOWEST_PORT, 16000)
BUS_BAND = (CLUSTER_PORTS[0] + BUS_OFFSET, CLUSTER_PORTS[1] + BUS_OFFSET)


def _share(start: int, stop: int) -> tuple[int, int]:
    """The block of ports ``start``..``stop`` this test process owns: one per pytest-xdist worker.

    Parallel workers never pick the same port, nor a block of consecutive ports
    that overlaps another worker's.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    index = int(worker.removeprefix("gw") or 0) % count
    size = (stop - start) // count
    return start + index * size, start + (index + 1) * size


def port_blocks(cluster: bool = False) -> list[tuple[int, int]]:
    """The ports (half-open ranges) this test process may take for listeners."""
    if cluster:
        return [_share(*CLUSTER_PORTS)]
    # Between the cluster band and the ephemeral range, but the bus band.
    return [_share(CLUSTER_PORTS[1], BUS_BAND[0]), _share(BUS_BAND[1], ephemeral_start())]


def free_port(cluster: bool = False) -> int:
    """A TCP port on 127.0.0.1, below the ephemeral range, that nothing listens on right now.

    ``cluster``: for a Redis Cluster node, whose bus port (+BUS_OFFSET) is then free too.
    """
    blocks = port_blocks(cluster)
    for _ in range(1000):
        start, stop = random.choice(blocks)
        port = random.randrange(start, stop)
        if port_is_free(port) and (not cluster or port_is_free(port + BUS_OFFSET)):
            _handed_out.add(port)
            return port
    raise AssertionError(f"no free port in {blocks}")


def healthy(url: str) -> bool:
    """Whether ``url``/_/health answers 200 now."""
    try:
        with urllib.request.urlopen(url + "/_/health", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def wait_healthy(url: str, timeout: float = WAIT, logs: Callable[[], str] = str) -> float:
    """Block until ``url`` is healthy; return how long it took.  ``logs`` explains a failure."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if healthy(url):
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{url} not healthy after {timeout}s\n{logs()}")


def wait_for_port(port: int, timeout: float = WAIT) -> None:
    """Block until something accepts TCP connections on ``port`` of 127.0.0.1."""
    wait_for_host_port("127.0.0.1", port, timeout)


def wait_for_host_port(host: str, port: int, timeout: float = WAIT) -> None:
    """Block until something accepts TCP connections on ``host``:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"nothing listening on {host}:{port} after {timeout}s")


def _end(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = WAIT) -> int:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    return process.returncode


class RedisServer:
    """A private ``redis-server`` that a test may kill, freeze and restart."""

    def __init__(self, port: int | None = None, extra: Collection[str] = ()) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.dir = tempfile.mkdtemp(prefix="tc-redis-")
        #: More redis-server arguments (cluster, replication, sentinel options).
        self.extra = list(extra)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
                "--loglevel",
                "warning",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def kill(self) -> None:
        """``kill -9``: no goodbye to its clients."""
        assert self.process is not None
        _end(self.process, signal.SIGKILL)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            _end(self.process)
            self.process = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def cli(self, *args: str) -> str:
        """Run ``redis-cli`` against this server and return its output."""
        binary = shutil.which("redis-cli")
        assert binary, "redis-cli is not installed"
        result = subprocess.run(
            [binary, "-p", str(self.port), *args], capture_output=True, timeout=WAIT, check=True
        )
        return result.stdout.decode()


class ServerProcess:
    """One real ``tornado-channels`` process on a free port."""

    def __init__(
        self,
        *args: str,
        env: dict[str, str] | None = None,
        port: int | None = None,
        command: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        # A port it chose itself may be chosen again if another process took it.
        self._own_port = port is None
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.command = command or [sys.executable, "-m", "tornado_channels"]
        self.log = Path(tempfile.mkstemp(prefix="tc-server-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None
        #: Extra keyword arguments for subprocess.Popen (e.g. preexec_fn).
        self.popen_options: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        for _ in range(3):
            with self.log.open("wb") as out:
                self.process = subprocess.Popen(
                    [*self.command, "--port", str(self.port), *self.args],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=self.env,
                    **self.popen_options,
                )
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline and self.process.poll() is None:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
                ):
                    return self
                time.sleep(0.02)
            if not (self._own_port and "Address already in use" in self.output()):
                break
            self.port = free_port()  # Taken meanwhile by someone else: another one.
        raise AssertionError(f"nothing listening on port {self.port}:\n{self.output()[-3000:]}")

    def wait_healthy(self, timeout: float = WAIT) -> ServerProcess:
        """Block until ``/_/health`` answers 200 (its broker is connected)."""
        wait_healthy(self.url, timeout, lambda: self.output())
        return self

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the process."""
        assert self.process is not None
        self.process.send_signal(sig)

    def wait_exit(self, timeout: float = WAIT) -> int:
        """Wait for the process to exit by itself; return its status."""
        assert self.process is not None
        return self.process.wait(timeout)

    def terminate(self, sig: int = signal.SIGTERM) -> int:
        """Signal the process and return its exit status."""
        assert self.process is not None
        return _end(self.process, sig)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def healthy_server(*args: str) -> Iterator[ServerProcess]:
    """A started, healthy process with ``args``, ended (and its log removed) afterwards.

    What a module-scoped ``server`` fixture yields from: one process shared by
    the module's tests that restart nothing.
    """
    process = ServerProcess(*args).start().wait_healthy()
    try:
        yield process
    finally:
        process.terminate()
        process.log.unlink(missing_ok=True)


def run(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
    """Run ``coro`` on a fresh event loop, failing it after ``timeout`` seconds."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def raw_websocket(
    port: int, path: str, timeout: float = WAIT
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket handshake by hand, for clients that misbehave after it.

    Returns the open stream once the server's 101 and headers have been read.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    status = await asyncio.wait_for(reader.readline(), timeout)
    assert b" 101 " in status, status
    while await asyncio.wait_for(reader.readline(), timeout) != b"\r\n":
        pass
    return reader, writer


async def connect(url: str, timeout: float = WAIT, **options: Any) -> WebSocketClientConnection:
    """Open a WebSocket; fail after ``timeout``.  ``options`` go to websocket_connect."""
    return await asyncio.wait_for(websocket_connect(url, **options), timeout)


async def receive(ws: WebSocketClientConnection, timeout: float = WAIT) -> str | bytes:
    """The next message on ``ws``; fails on timeout or on close."""
    message = await asyncio.wait_for(ws.read_message(), timeout)
    assert message is not None, f"closed ({ws.close_code} {ws.close_reason}) instead of a message"
    return message


async def next_json(ws: WebSocketClientConnection, timeout: float = WAIT) -> dict[str, Any]:
    """The next message on ``ws``, which must be a JSON object (positions, outcomes)."""
    message = await receive(ws, timeout)
    assert isinstance(message, str), message
    value = json.loads(message)
    assert isinstance(value, dict), value
    return value


async def closed(
    ws: WebSocketClientConnection, timeout: float = WAIT
) -> tuple[int | None, str | None]:
    """Wait for the server to close ``ws``; return its close code and reason."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        message = await asyncio.wait_for(ws.read_message(), max(remaining, 0.01))
        if message is None:
            return ws.close_code, ws.close_reason


async def hang_up(ws: WebSocketClientConnection, timeout: float = 5.0) -> None:
    """Close ``ws`` and wait for the server's close reply (or ``timeout``).

    Tornado's client closes its socket only once that reply arrives; a test
    whose loop ended before it left the socket to the collector, which then
    raised "unclosed socket" (a ResourceWarning, an error here) in whatever
    test ran next.
    """
    ws.close()
    with contextlib.suppress(asyncio.TimeoutError):
        await closed(ws, timeout)


async def silent(ws: WebSocketClientConnection, wait: float = SILENCE) -> None:
    """Assert that nothing arrives on ``ws`` for ``wait`` seconds."""
    try:
        message = await asyncio.wait_for(ws.read_message(), wait)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"expected no message, got {message!r}")


async def post(url: str, body: bytes | str, **kwargs: Any) -> HTTPResponse:
    """POST ``body`` to ``url``; any status is returned, not raised."""
    client = AsyncHTTPClient()
    return await client.fetch(
        url, method="POST", body=body, raise_error=False, request_timeout=WAIT, **kwargs
    )


async def get(url: str, **kwargs: Any) -> HTTPResponse:
    """GET ``url``; any status is returned, not raised."""
    client = AsyncHTTPClient()
    return await client.fetch(url, raise_error=False, request_timeout=WAIT, **kwargs)


async def until(predicate: Any, timeout: float = WAIT, what: str = "condition") -> None:
    """Poll an (async or plain) predicate until it is true; fail after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.05)


class EventStream:
    """A server-sent-events client on a raw socket, for tests: parses what arrives."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.headers: dict[str, str] = {}
        self._text = ""
        #: Comment lines seen (heartbeats).
        self.comments = 0

    @classmethod
    async def open(
        cls, port: int, path: str, headers: dict[str, str] | None = None, timeout: float = WAIT
    ) -> EventStream:
        """GET ``path`` as an event stream; fails unless the answer is 200."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Accept: text/event-stream"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        stream = cls(reader, writer)
        status = await asyncio.wait_for(reader.readline(), timeout)
        assert b" 200 " in status, status
        while (line := await asyncio.wait_for(reader.readline(), timeout)) != b"\r\n":
            name, _, value = line.decode().partition(":")
            stream.headers[name.strip().lower()] = value.strip()
        return stream

    async def _more(self, timeout: float) -> bool:
        # The body is chunked: a size line, the data, CRLF. Size 0 ends it.
        size_line = await asyncio.wait_for(self.reader.readline(), timeout)
        if not size_line:
            return False
        size = int(size_line.strip() or b"0", 16)
        if size == 0:
            return False
        data = await asyncio.wait_for(self.reader.readexactly(size + 2), timeout)
        self._text += data[:-2].decode()
        return True

    async def next(self, timeout: float = WAIT) -> dict[str, str] | None:
        """The next event (its fields; data lines joined), or None when the stream ends.

        ``timeout`` bounds the whole wait, heartbeats included.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            while "\n\n" in self._text:
                block, self._text = self._text.split("\n\n", 1)
                fields: dict[str, str] = {}
                for line in block.split("\n"):
                    if line.startswith(":"):
                        self.comments += 1
                        continue
                    name, _, value = line.partition(": ")
                    if name == "data" and "data" in fields:
                        fields["data"] += "\n" + value
                    else:
                        fields[name] = value
                if set(fields) - {"retry"}:
                    return fields
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no event within {timeout}s")
            if not await self._more(remaining):
                return None

    def close(self) -> None:
        self.writer.close()


class RawResponse:
    """One HTTP response as read off a raw socket: status, headers (lower-case names), body."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"RawResponse({self.status}, {self.headers}, {self.body[:80]!r})"


def parse_responses(data: bytes, heads: Collection[int] = ()) -> list[RawResponse]:
    """Every complete response in ``data``, in order (Content-Length or chunked bodies).

    ``heads``: the indexes of responses to HEAD requests (their headers describe
    a body that is not there).
    """
    responses: list[RawResponse] = []
    while data:
        head_only = len(responses) in heads
        end = data.find(b"\r\n\r\n")
        if end < 0:
            break
        lines = data[:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        data = data[end + 4 :]
        if head_only or status in (100, 101, 204, 304):
            body = b""
        elif headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size_end = data.find(b"\r\n")
                size = int(data[:size_end], 16)
                body += data[size_end + 2 : size_end + 2 + size]
                data = data[size_end + 2 + size + 2 :]
                if not size:
                    break
        else:
            length = int(headers.get("content-length", "0"))
            body, data = data[:length], data[length:]
        responses.append(RawResponse(status, headers, body))
    return responses


def raw_exchange(
    port: int,
    request: bytes,
    *,
    timeout: float = 3.0,
    until_close: bool = True,
    expect: int = 1,
    heads: Collection[int] = (),
) -> tuple[list[RawResponse], bool]:
    """Send ``request`` (whole, before reading) on one connection; read the responses.

    Reads until the server closes (``until_close``) or ``expect`` responses
    arrived.  Returns them, and whether the connection was closed by the server
    (a reset counts as closed; its responses are whatever arrived before it).
    """
    import socket as socket_module

    received = b""
    closed_by_server = False
    with socket_module.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(1 << 20)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed_by_server = True
                break
            if not chunk:
                closed_by_server = True
                break
            received += chunk
            if not until_close and len(parse_responses(received, heads)) >= expect:
                break
    return parse_responses(received, heads), closed_by_server
