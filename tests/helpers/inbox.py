"""A subscriber for tests of the hub, node and brokers: it records what it is sent."""

from __future__ import annotations

import asyncio

from tornado_channels.core.deflate import Deflate
from tornado_channels.core.frames import Encoding


class Inbox:
    """A purpose-built subscriber that records what it is sent and how it was closed."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.closes: list[tuple[int | None, str | None]] = []
        self.arrived = asyncio.Event()

    encoding = Encoding.RAW
    deflate: Deflate | None = None
    recovering = False

    def send_frame(self, frame: bytes, seq: int = 0) -> None:
        # Messages delivered together arrive joined in one write: split them
        # (frames here are small, with 2-byte headers).
        while frame:
            end = 2 + (frame[1] & 0x7F)
            self.frames.append(frame[:end])
            frame = frame[end:]
        self.arrived.set()

    def buffered_bytes(self) -> int:
        return 0

    def offer(self, frame: bytes, seq: int, limit: int) -> bool:
        if self.buffered_bytes() > limit:
            return False
        self.send_frame(frame, seq)
        return True

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.closes.append((code, reason))

    async def next(self, timeout: float = 5.0) -> bytes:
        """The payload of the next frame (frames here are small, 2-byte headers)."""
        if not self.frames:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), timeout)
        return self.frames.pop(0)[2:]

    async def nothing(self, wait: float = 0.5) -> None:
        await asyncio.sleep(wait)
        assert self.frames == [], f"expected nothing, got {self.frames!r}"
