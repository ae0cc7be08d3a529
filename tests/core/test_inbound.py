"""Client frames parsed and checked without an event loop: the rules RFC 6455 sets for servers."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tornado_channels.core.inbound import (
    NO_STATUS,
    OPCODE_CONTINUATION,
    OPCODE_PING,
    OPCODE_PONG,
    FrameReader,
    Inbound,
    mask,
)

TEXT, BINARY, CLOSE = 0x1, 0x2, 0x8


def frame(
    opcode: int, payload: bytes, fin: bool = True, masked: bool = True, rsv: int = 0
) -> bytes:
    """A client frame as a browser would send it (masked), or deliberately not."""
    first = (0x80 if fin else 0) | rsv | opcode
    length = len(payload)
    if length < 126:
        header = bytes([first, (0x80 if masked else 0) | length])
    elif length <= 0xFFFF:
        header = bytes([first, (0x80 if masked else 0) | 126]) + struct.pack("!H", length)
    else:
        header = bytes([first, (0x80 if masked else 0) | 127]) + struct.pack("!Q", length)
    if not masked:
        return header + payload
    # A mask that varies with the frame, yet is the same on every run: parametrized
    # frames are test ids, which each pytest-xdist worker must collect alike.
    key = hashlib.blake2b(header + payload, digest_size=4).digest()
    return header + key + mask(key, payload)


def read(data: bytes, limit: int = 1 << 20) -> tuple[list[Inbound], int, tuple[int, str] | None]:
    inbound, frames, error = FrameReader(limit).feed(data)
    return inbound, frames, None if error is None else (error.code, error.reason)


def test_messages_of_every_size_come_out_whole():
    """Text and binary messages with 7-, 16- and 64-bit lengths are unmasked and returned."""
    sizes = [0, 125, 126, 65535, 65536]
    data = b"".join(frame(BINARY, b"x" * n) for n in sizes) + frame(TEXT, "héllo".encode())
    inbound, frames, error = read(data)
    assert error is None
    assert frames == 6
    assert [len(i.payload) for i in inbound[:5]] == sizes
    assert inbound[5] == Inbound(TEXT, "héllo".encode())


def test_fragments_are_joined_around_control_frames():
    """A fragmented message is joined; a ping between its fragments comes out first."""
    data = (
        frame(TEXT, b"he", fin=False)
        + frame(OPCODE_PING, b"?")
        + frame(OPCODE_CONTINUATION, b"ll", fin=False)
        + frame(OPCODE_CONTINUATION, b"o")
    )
    inbound, frames, error = read(data)
    assert error is None
    assert frames == 4
    assert inbound == [Inbound(OPCODE_PING, b"?"), Inbound(TEXT, b"hello")]


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=30))
def test_any_split_of_the_bytes_gives_the_same_messages(cuts):
    """However the bytes are split across reads, the same messages come out, in order."""
    data = (
        frame(TEXT, b"one")
        + frame(BINARY, b"\x00" * 300, fin=False)
        + frame(OPCODE_PONG, b"")
        + frame(OPCODE_CONTINUATION, b"\x01")
        + frame(CLOSE, struct.pack("!H", 1000) + b"bye")
    )
    reader = FrameReader(1 << 20)
    got: list[Inbound] = []
    position = 0
    for cut in cuts:
        inbound, _, error = reader.feed(data[position : position + cut])
        assert error is None
        got += inbound
        position += cut
    inbound, _, error = reader.feed(data[position:])
    got += inbound
    assert error is None
    assert got == [
        Inbound(TEXT, b"one"),
        Inbound(OPCODE_PONG, b""),
        Inbound(BINARY, b"\x00" * 300 + b"\x01"),
        Inbound(CLOSE, struct.pack("!H", 1000) + b"bye", 1000, "bye"),
    ]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(TEXT, b"x", masked=False), 1002),
        (frame(TEXT, b"x", rsv=0x40), 1002),
        (frame(0x3, b"x"), 1002),
        (frame(0xB, b""), 1002),
        (frame(OPCODE_PING, b"x", fin=False), 1002),
        (frame(OPCODE_PING, b"x" * 126), 1002),
        (frame(OPCODE_CONTINUATION, b"x"), 1002),
        (frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), 1002),
        (frame(CLOSE, b"\x03"), 1002),
        (frame(CLOSE, struct.pack("!H", 1005)), 1002),
        (frame(CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007),
        (frame(TEXT, b"\xff"), 1007),
        (frame(BINARY, b"x" * 11), 1009),
        (frame(TEXT, b"x" * 6, fin=False) + frame(OPCODE_CONTINUATION, b"x" * 6), 1009),
    ],
)
def test_what_a_client_may_not_send_fails_the_connection(data: bytes, code: int):
    """Each breach of the protocol ends reading with the close code that fails the connection."""
    _, _, error = read(data, limit=10)
    assert error is not None
    assert error[0] == code


def test_invalid_utf8_fails_on_the_fragment_that_proves_it():
    """A fragmented text message fails at the first fragment that cannot be UTF-8 (fail fast)."""
    reader = FrameReader(1 << 20)
    assert reader.feed(frame(TEXT, "κ".encode()[:1], fin=False))[2] is None  # could go on
    _, _, error = reader.feed(frame(OPCODE_CONTINUATION, b"\xff", fin=False))
    assert error is not None
    assert error.code == 1007


def test_an_oversized_frame_fails_from_its_header_alone():
    """A frame announcing more than the limit fails before its payload has arrived."""
    header_only = frame(BINARY, b"x" * 70000)[:14]
    _, _, error = read(header_only, limit=65536)
    assert error == (1009, "message too big")


def test_what_came_before_a_bad_frame_is_still_returned():
    """A valid message just before a bad frame is returned with the error."""
    inbound, frames, error = read(frame(TEXT, b"ok") + frame(TEXT, b"x", masked=False))
    assert inbound == [Inbound(TEXT, b"ok")]
    assert frames == 1
    assert error == (1002, "client frames must be masked")


def test_nothing_after_a_close_frame_is_read():
    """Frames after the client's close frame are ignored; an empty close has no status."""
    inbound, frames, error = read(frame(CLOSE, b"") + frame(TEXT, b"late"))
    assert error is None
    assert frames == 1
    assert inbound == [Inbound(CLOSE, b"", NO_STATUS, "")]


def test_masking_follows_rfc_6455_examples() -> None:
    """RFC 6455 5.7: the masked "Hello" frame's payload unmasks to "Hello", and back."""
    key, masked = b"\x37\xfa\x21\x3d", b"\x7f\x9f\x4d\x51\x58"
    assert mask(key, masked) == b"Hello"
    assert mask(key, b"Hello") == masked
    assert mask(key, b"") == b""


@given(st.binary(min_size=4, max_size=4), st.binary(max_size=3000))
def test_masking_twice_is_the_identity(key: bytes, data: bytes) -> None:
    """Masking is its own inverse, for any key and any length (whole words or not)."""
    assert mask(key, mask(key, data)) == data
    assert mask(key, data) == bytes(byte ^ key[i % 4] for i, byte in enumerate(data))
