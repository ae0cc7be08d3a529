"""permessage-deflate without an event loop: negotiation, compress once, bounded inflation."""

from __future__ import annotations

import functools
import json
import tracemalloc
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tornado_channels.core.deflate import Deflate, InflateError, Inflater, negotiate, parse_offers
from tornado_channels.core.frames import OPCODE_BINARY, OPCODE_TEXT, Encoding, MessageFrames
from tornado_channels.core.inbound import FrameReader

from .test_inbound import frame

MESSAGE = json.dumps(
    [
        {"id": i, "user": f"user{i}", "email": f"user{i}@example.com", "on": i % 2 == 0}
        for i in range(30)
    ]
).encode()


def inflate(data: bytes, window_bits: int = 15) -> bytes:
    """What a client does with a compressed message: append the tail, inflate."""
    return zlib.decompressobj(-window_bits).decompress(data + b"\x00\x00\xff\xff")


def deflate(data: bytes, compressor: zlib._Compress | None = None) -> bytes:
    """What a client sends: a message deflated, without its tail."""
    compressor = compressor or zlib.compressobj(6, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def payload_of(encoded: bytes) -> bytes:
    """The payload of one unmasked server frame."""
    length = encoded[1] & 0x7F
    return encoded[{126: 4, 127: 10}.get(length, 2) :]


# --- Negotiation -----------------------------------------------------------------


def test_a_plain_offer_is_answered_with_server_no_context_takeover() -> None:
    """Chromium's offer is answered with server_no_context_takeover, and a 15-bit window."""
    agreement = negotiate("permessage-deflate; client_max_window_bits", 256)
    assert agreement is not None
    assert agreement.response == "permessage-deflate; server_no_context_takeover"
    assert agreement.outbound == Deflate(15, 256)
    assert agreement.client_window_bits == 15
    assert not agreement.client_no_context_takeover


def test_client_parameters_are_honoured() -> None:
    """client_no_context_takeover and a client_max_window_bits value are echoed and used."""
    agreement = negotiate(
        "permessage-deflate; client_no_context_takeover; client_max_window_bits=10; "
        "server_max_window_bits=12",
        100,
    )
    assert agreement is not None
    assert agreement.response == (
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=12; client_max_window_bits=10"
    )
    assert agreement.outbound == Deflate(12, 100)
    assert agreement.client_no_context_takeover
    assert agreement.client_window_bits == 10


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; server_max_window_bits",  # a value is required
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; mem_level=9",
        "x-webkit-deflate-frame",
        'permessage-deflate; server_max_window_bits="10',  # unterminated quote
        ";;;",
    ],
)
def test_offers_that_cannot_be_served_are_declined_not_failed(offer: str) -> None:
    """An unknown, repeated or malformed parameter declines the offer: no compression, no error."""
    assert negotiate(offer, 256) is None


def test_the_first_offer_that_can_be_served_wins() -> None:
    """Of several offers, a declined one is skipped for the next (Autobahn 13.7)."""
    agreement = negotiate(
        "permessage-deflate; mem_level=4, permessage-deflate; server_max_window_bits=9, "
        "permessage-deflate",
        256,
    )
    assert agreement is not None
    assert agreement.outbound.window_bits == 9


def test_quoted_values_are_read() -> None:
    """A parameter value may be a quoted string (RFC 6455 section 9.1)."""
    assert parse_offers('permessage-deflate; server_max_window_bits="10", foo') == [
        ("permessage-deflate", [("server_max_window_bits", "10")]),
        ("foo", []),
    ]
    agreement = negotiate('permessage-deflate; server_max_window_bits="10"', 256)
    assert agreement is not None
    assert agreement.outbound.window_bits == 10


def test_no_offer_no_compression() -> None:
    """Without the header, or without permessage-deflate in it, nothing is agreed."""
    assert negotiate(None, 256) is None
    assert negotiate("", 256) is None
    assert negotiate("foo; bar=1", 256) is None


# --- Compressing once --------------------------------------------------------------


def test_a_message_is_deflated_on_its_own_without_its_tail() -> None:
    """The compressed bytes inflate, with the tail put back, to the message."""
    compressed = Deflate().compress(MESSAGE)
    assert compressed is not None
    assert not compressed.endswith(b"\x00\x00\xff\xff")
    assert inflate(compressed) == MESSAGE
    assert len(compressed) <= 0.35 * len(MESSAGE)


def test_small_or_incompressible_messages_go_uncompressed() -> None:
    """Below the threshold, or not smaller deflated, or with an 8-bit window: None."""
    assert Deflate(15, 256).compress(b"x" * 255) is None
    assert Deflate(15, 256).compress(b"x" * 256) is not None
    assert Deflate(15, 0).compress(bytes(range(256))) is None  # random-like: no gain
    assert Deflate(8, 0).compress(MESSAGE) is None


@given(st.binary(min_size=0, max_size=3000), st.integers(min_value=9, max_value=15))
def test_any_payload_round_trips(payload: bytes, bits: int) -> None:
    """Whatever is compressed inflates to exactly the same bytes, in any window."""
    compressed = Deflate(bits, 0).compress(payload)
    if compressed is not None:
        assert inflate(compressed, bits) == payload


@given(
    st.binary(min_size=1, max_size=30),
    st.integers(min_value=10, max_value=200),
    st.integers(min_value=9, max_value=15),
)
def test_a_repetitive_payload_is_compressed_and_round_trips(
    chunk: bytes, times: int, bits: int
) -> None:
    """A payload that repeats itself always deflates smaller, and inflates back whole."""
    payload = chunk * times
    compressed = Deflate(bits, 0).compress(payload)
    assert compressed is not None
    assert len(compressed) < len(payload)
    assert inflate(compressed, bits) == payload


def test_each_frame_is_made_once_per_encoding_and_parameter_set() -> None:
    """The same bytes object for every ask with the same (encoding, parameters)."""
    message = MessageFrames("e:1", MESSAGE, "users/1")
    first = message.frame(Encoding.RAW, Deflate())
    assert message.frame(Encoding.RAW, Deflate()) is first
    assert first[0] == 0x80 | 0x40 | OPCODE_TEXT  # FIN, RSV1, text
    plain = message.frame(Encoding.RAW)
    assert plain[0] == 0x80 | OPCODE_TEXT
    assert plain.endswith(MESSAGE)
    assert message.frame(Encoding.RAW, Deflate(10)) is not first
    assert message.frame(Encoding.SSE, Deflate()) is message.frame(Encoding.SSE)
    assert message.frame(Encoding.SSE_LABELLED, Deflate()) is message.frame(Encoding.SSE_LABELLED)


def test_envelopes_are_compressed_too_and_binary_keeps_its_opcode() -> None:
    """An envelope frame inflates to the envelope; a binary payload stays a binary frame."""
    envelope = MessageFrames("e:1", MESSAGE).frame(Encoding.ENVELOPE, Deflate())
    assert envelope[0] & 0x40
    assert json.loads(inflate(payload_of(envelope)))["data"] == MESSAGE.decode()
    binary = b"\xff" * 1000
    frame_ = MessageFrames("e:2", binary).frame(Encoding.RAW, Deflate())
    assert frame_[0] == 0x80 | 0x40 | OPCODE_BINARY
    assert inflate(payload_of(frame_)) == binary


def test_below_the_threshold_the_uncompressed_frame_is_shared() -> None:
    """A small message's frame for compressing subscribers is the plain one, RSV1 clear."""
    message = MessageFrames("e:1", b"hello")
    assert message.frame(Encoding.RAW, Deflate()) is message.frame(Encoding.RAW)
    assert message.frame(Encoding.RAW)[0] & 0x40 == 0


# --- Inflating what clients send -----------------------------------------------------


def compressed_frame(data: bytes, opcode: int = OPCODE_TEXT, fin: bool = True) -> bytes:
    return frame(opcode, data, fin=fin, rsv=0x40)


def test_compressed_client_messages_are_inflated() -> None:
    """A compressed text message arrives as its inflated bytes."""
    reader = FrameReader(1 << 20, Inflater())
    done, frames, error = reader.feed(compressed_frame(deflate(MESSAGE)))
    assert error is None
    assert frames == 1
    assert [item.payload for item in done] == [MESSAGE]


def test_context_takeover_keeps_one_decompressor_only_when_asked() -> None:
    """With takeover the second message refers to the first; without, nothing is kept."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    first, second = deflate(MESSAGE, compressor), deflate(MESSAGE, compressor)
    assert len(second) < len(first) / 4  # It refers back to the first message.
    inflater = Inflater(15, takeover=True)
    reader = FrameReader(1 << 20, inflater)
    assert not inflater.holding  # Nothing made before the first compressed message.
    done, _, error = reader.feed(compressed_frame(first) + compressed_frame(second))
    assert error is None
    assert [item.payload for item in done] == [MESSAGE, MESSAGE]
    assert inflater.holding
    fresh = Inflater(15, takeover=False)
    done, _, error = FrameReader(1 << 20, fresh).feed(compressed_frame(first))
    assert error is None
    assert done[0].payload == MESSAGE
    assert not fresh.holding


def test_fragmented_compressed_messages_are_inflated_as_they_arrive() -> None:
    """RSV1 on the first fragment covers the message; continuations carry none."""
    data = deflate(MESSAGE)
    half = len(data) // 2
    reader = FrameReader(1 << 20, Inflater())
    wire = compressed_frame(data[:half], fin=False) + frame(0x0, data[half:])
    done, frames, error = reader.feed(wire)
    assert error is None
    assert frames == 2
    assert done[0].payload == MESSAGE


def test_rsv1_without_an_agreement_is_a_protocol_error() -> None:
    """Without permessage-deflate agreed, RSV1 fails the connection with 1002, as before."""
    _, _, error = FrameReader(1 << 20).feed(frame(OPCODE_TEXT, b"x", rsv=0x40))
    assert error is not None
    assert error.code == 1002


@pytest.mark.parametrize(
    "wire",
    [
        frame(0x9, b"", rsv=0x40),  # on a ping
        frame(OPCODE_TEXT, b"x", fin=False) + frame(0x0, b"y", rsv=0x40),  # on a continuation
        frame(OPCODE_TEXT, b"x", rsv=0x20),  # RSV2: no extension uses it
    ],
)
def test_rsv1_where_it_may_not_be_is_a_protocol_error(wire: bytes) -> None:
    """Once agreed, RSV1 is allowed on a data message's first frame only."""
    _, _, error = FrameReader(1 << 20, Inflater()).feed(wire)
    assert error is not None
    assert error.code == 1002


@functools.cache
def bomb(mebibytes: int) -> bytes:
    """``mebibytes`` MiB of zeros deflated as tightly as deflate goes (about 1000:1)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    data = b"".join(compressor.compress(chunk) for _ in range(mebibytes))
    return data + compressor.flush(zlib.Z_SYNC_FLUSH)[:-4]


def test_a_deflate_bomb_closes_1009_before_the_memory_is_spent() -> None:
    """1 MiB on the wire that inflates to 1 GiB: 1009, after inflating no more than the maximum."""
    wire = compressed_frame(bomb(1024))
    limit = 1 << 20
    assert len(wire) < limit + 64 << 10
    tracemalloc.start()
    try:
        reader = FrameReader(limit, Inflater())
        _, _, error = reader.feed(wire)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert error is not None
    assert error.code == 1009
    # Unmasking the 1 MiB frame takes a few copies of it (inbound.mask), and
    # inflating at most the maximum: megabytes, not the gigabyte.
    assert peak < 8 * limit, peak


def test_a_fragmented_bomb_is_bounded_across_fragments() -> None:
    """Fragments that each inflate within the maximum still fail once their sum passes it."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    part = compressor.compress(bytes(600 << 10)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    wire = compressed_frame(part, fin=False) + frame(0x0, part, fin=False)
    _, _, error = FrameReader(1 << 20, Inflater()).feed(wire)
    assert error is not None
    assert error.code == 1009


def test_corrupt_compressed_data_fails_the_connection() -> None:
    """Bytes that are not deflate data close with 1007."""
    _, _, error = FrameReader(1 << 20, Inflater()).feed(compressed_frame(b"\xff\xff\xff\xff"))
    assert error is not None
    assert error.code == 1007


def test_inflated_text_must_be_utf8() -> None:
    """A compressed text message that inflates to invalid UTF-8 closes with 1007."""
    _, _, error = FrameReader(1 << 20, Inflater()).feed(compressed_frame(deflate(b"\xff" * 300)))
    assert error is not None
    assert error.code == 1007


def test_inflate_error_reports_too_big() -> None:
    """The inflater itself stops at room + 1 bytes."""
    with pytest.raises(InflateError) as caught:
        Inflater().inflate(deflate(bytes(10000)), 100, final=True)
    assert caught.value.too_big
