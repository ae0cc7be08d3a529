"""server/drain.py: writers wait while the transport is full, and fail once it is gone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from tornado.iostream import StreamClosedError

from tornado_channels.server.drain import Drain


class Transport:
    """What a Drain writes to: it keeps the bytes and can be closing."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closing


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_a_write_with_room_is_sent_and_resolved_at_once(loop: asyncio.AbstractEventLoop) -> None:
    """While the transport has room, the bytes are written and the writer need not wait."""
    drain, transport = Drain(loop), Transport()
    future = drain.write(transport, b"answer")
    assert transport.written == [b"answer"]
    assert future.done()
    assert future.result() is None


def test_a_write_to_a_full_transport_waits_for_it_to_drain(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """After pause(), a write is sent but its writer waits; resume() releases it."""
    drain, transport = Drain(loop), Transport()
    drain.pause()
    future = drain.write(transport, b"more")
    assert transport.written == [b"more"]
    assert not future.done()
    drain.resume()
    assert future.done()
    assert future.result() is None
    assert not drain.paused


def test_writers_still_waiting_when_the_connection_is_lost_fail(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """lost() fails every waiting writer with StreamClosedError, as Tornado's streams do."""
    drain, transport = Drain(loop), Transport()
    drain.pause()
    waiting = [drain.write(transport, b"x") for _ in range(3)]
    drain.lost()
    for future in waiting:
        assert isinstance(future.exception(), StreamClosedError)


@pytest.mark.parametrize("closing", [True, False])
def test_a_write_to_a_closed_or_missing_transport_fails_without_writing(
    loop: asyncio.AbstractEventLoop, closing: bool
) -> None:
    """No transport, or one closing: nothing is written and the future holds StreamClosedError."""
    drain, transport = Drain(loop), Transport()
    transport.closing = True
    future = drain.write(transport if closing else None, b"late")
    assert transport.written == []
    assert isinstance(future.exception(), StreamClosedError)
