"""WebSocket frames: unmasked, unfragmented server frames per RFC 6455."""

from __future__ import annotations

import struct
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tornado_channels.core import frames
from tornado_channels.core.frames import OPCODE_BINARY, OPCODE_TEXT, encode_frame, is_text


class Frame(NamedTuple):
    fin: bool
    rsv: int
    opcode: int
    masked: bool
    header_length: int
    payload: bytes


def decode_frame(data: bytes) -> Frame:
    """Decode exactly one RFC 6455 frame, insisting on minimal length encoding."""
    first, second = data[0], data[1]
    length = second & 0x7F
    offset = 2
    if length == 126:
        (length,) = struct.unpack_from("!H", data, offset)
        offset += 2
        assert length >= 126, "16-bit length used for a 7-bit length"
    elif length == 127:
        (length,) = struct.unpack_from("!Q", data, offset)
        offset += 8
        assert length > 0xFFFF, "64-bit length used for a 16-bit length"
        assert length >> 63 == 0, "most significant bit of a 64-bit length is set"
    masked = bool(second & 0x80)
    if masked:
        offset += 4
    payload = data[offset:]
    assert len(payload) == length, "frame length does not match its payload"
    return Frame(
        fin=bool(first & 0x80),
        rsv=first & 0x70,
        opcode=first & 0x0F,
        masked=masked,
        header_length=offset,
        payload=payload,
    )


@pytest.mark.parametrize(
    ("payload", "opcode"),
    [
        (b"hello", OPCODE_TEXT),
        (b"", OPCODE_TEXT),
        ("café 日本 😀".encode(), OPCODE_TEXT),
        (b"\x00", OPCODE_TEXT),
        (b"\xff", OPCODE_BINARY),
        (b"caf\xc3", OPCODE_BINARY),
        (b"\xed\xa0\x80", OPCODE_BINARY),
    ],
)
def test_opcode_follows_utf8_validity(payload, opcode):
    """Valid UTF-8 travels in a text frame and anything else in a binary frame."""
    frame = decode_frame(encode_frame(payload))
    assert (frame.opcode, frame.payload) == (opcode, payload)


@pytest.mark.parametrize("opcode", [OPCODE_TEXT, OPCODE_BINARY])
@pytest.mark.parametrize("payload", [b"text", b"\xff"])
def test_explicit_opcode_is_honoured(payload, opcode):
    """An explicit opcode overrides the UTF-8 guess."""
    assert decode_frame(encode_frame(payload, opcode)).opcode == opcode


@pytest.mark.parametrize(
    ("length", "header_length"),
    [(0, 2), (1, 2), (125, 2), (126, 4), (65535, 4), (65536, 10), (70000, 10)],
)
def test_length_uses_the_minimal_encoding(length, header_length):
    """Lengths up to 125 fit the first byte, up to 65535 take 16 bits, beyond 64."""
    payload = b"x" * length
    data = encode_frame(payload)
    frame = decode_frame(data)
    assert frame.header_length == header_length
    assert len(data) == header_length + length
    assert frame.payload == payload


@pytest.mark.parametrize("payload", [b"", b"hi", b"\xff" * 300, b"a" * 70000])
def test_server_frames_are_final_unmasked_and_reserved_bits_clear(payload):
    """Every frame has FIN set, the mask bit clear and the RSV bits zero."""
    frame = decode_frame(encode_frame(payload))
    assert (frame.fin, frame.masked, frame.rsv) == (True, False, 0)


@settings(deadline=None)
@given(st.binary(max_size=2000))
def test_any_payload_round_trips_through_a_frame(payload):
    """Any bytes framed and decoded come back unchanged, with the guessed opcode."""
    frame = decode_frame(encode_frame(payload))
    assert frame.payload == payload
    assert (frame.fin, frame.masked) == (True, False)
    assert frame.opcode == (OPCODE_TEXT if is_text(payload) else OPCODE_BINARY)


@pytest.mark.parametrize(
    ("payload", "text"),
    [
        (b"", True),
        (b"ascii", True),
        ("é".encode(), True),
        (b"\xff", False),
        (b"\xc3", False),
    ],
)
def test_is_text_means_valid_utf8(payload, text):
    """is_text is true exactly for valid UTF-8."""
    assert is_text(payload) is text


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("OPCODE_TEXT", 0x1),
        ("OPCODE_BINARY", 0x2),
        ("CLOSE_GOING_AWAY", 1001),
        ("CLOSE_POLICY_VIOLATION", 1008),
        ("CLOSE_MESSAGE_TOO_BIG", 1009),
        ("CLOSE_INTERNAL_ERROR", 1011),
        ("CLOSE_TRY_AGAIN_LATER", 1013),
        ("CLOSE_SLOW_CONSUMER", 4008),
    ],
)
def test_protocol_constants_have_their_documented_values(name, code):
    """Opcodes and close codes match RFC 6455 and the README."""
    assert getattr(frames, name) == code


def test_close_frame_reasons_are_cut_at_a_character():
    """A long close reason is cut to fit 125 bytes without splitting a UTF-8 character."""
    frame = frames.close_frame(1008, "é" * 100)
    payload = frame[2:]
    assert frame[0] == 0x88
    assert len(payload) <= 125
    assert payload[:2] == b"\x03\xf0"
    assert payload[2:].decode("utf-8") == "é" * 61
    assert frames.close_frame(None) == b"\x88\x00"
