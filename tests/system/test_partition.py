"""A silent network partition between a process and its Redis (a namespaced test host)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from tornado_channels import Channel, Node
from tornado_channels.core.frames import CLOSE_TRY_AGAIN_LATER

from ..helpers import (
    Inbox,
    NetnsUnavailable,
    TestHost,
    redis_broker,
    run,
    until,
    wait_for_host_port,
)

# One network namespace at a time: every TestHost has the same addresses, so the
# tests that make one run in the same pytest-xdist worker (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("netns")

PORT = 6399


@pytest.fixture
def redis_across_a_link() -> Iterator[TestHost]:
    """A private Redis on a test host in its own network namespace."""
    host = TestHost()
    try:
        host.create()
    except NetnsUnavailable as exc:
        pytest.skip(f"cannot create a network namespace here: {exc}")
    workdir = tempfile.mkdtemp(prefix="tc-netns-redis-")
    redis = subprocess.Popen(
        host.command(
            str(shutil.which("redis-server")),
            "--bind",
            host.address,
            "--port",
            str(PORT),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--protected-mode",
            "no",
        ),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_host_port(host.address, PORT)
        yield host
    finally:
        redis.terminate()
        try:
            redis.wait(10)
        except subprocess.TimeoutExpired:
            redis.kill()
            redis.wait(10)
        host.destroy()
        shutil.rmtree(workdir, ignore_errors=True)


def test_silent_partition_is_detected_and_healed(redis_across_a_link: TestHost) -> None:
    """With the link down (no reset, just silence) the probe notices; healing reconnects."""
    host = redis_across_a_link

    async def scenario() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        broker = redis_broker(
            f"redis://{host.address}:{PORT}/0", redis_probe_interval=0.5, redis_timeout=0.5
        )
        node = Node(broker)
        await node.start()
        await until(lambda: node.connected, what="connected across the link")
        inbox = Inbox()
        await node.subscribe(Channel("far"), inbox)
        await node.publish(Channel("far"), b"before")
        assert await inbox.next() == b"before"
        host.partition()
        cut = loop.time()
        await until(lambda: not node.connected, timeout=10, what="partition detected")
        detected = loop.time() - cut
        assert inbox.closes[0][0] == CLOSE_TRY_AGAIN_LATER
        host.heal()
        healed = loop.time()
        await until(lambda: node.connected, timeout=15, what="reconnected after healing")
        reconnected = loop.time() - healed
        await node.subscribe(Channel("far"), inbox)
        await node.publish(Channel("far"), b"after")
        assert await inbox.next() == b"after"
        await node.stop()
        return {"detected": detected, "reconnected": reconnected}

    figures = run(scenario())
    print(f"\npartition figures: {figures}")
    # Within a few probe timeouts, with room for a loaded machine.
    assert figures["detected"] < 6.0
