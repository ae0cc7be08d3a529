"""Publications, positions, and the broker envelope: a publication as bytes, and back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tornado_channels.core.channels import Channel, Subtree
from tornado_channels.core.publication import (
    InvalidPosition,
    MalformedEnvelope,
    Position,
    Publication,
    decode,
    encode,
)

TARGETS = [
    Channel("users/1"),
    Channel("café/日本"),
    Subtree("users"),
    Subtree(""),
]
PAYLOADS = [
    b"hello",
    b"",
    b"line\nbreak\n",
    b"\x00nul\x00",
    b"\xff\xfe\x80",
    "é".encode(),
]
AT = Position("9f3c01ab", 42)


def test_positions_round_trip_through_text() -> None:
    """A position prints as <epoch>:<seq> and parses back to itself."""
    position = Position("ab12", 42)
    assert str(position) == "ab12:42"
    assert Position.parse("ab12:42") == position


@pytest.mark.parametrize("text", ["", "ab12", "ab12:", ":3", "AB:3", "ab:-1", "ab:1:2", "x" * 40])
def test_malformed_positions_are_refused(text: str) -> None:
    """Anything but <hex epoch>:<decimal seq> raises InvalidPosition."""
    with pytest.raises(InvalidPosition):
        Position.parse(text)


@pytest.mark.parametrize("target", TARGETS, ids=str)
@pytest.mark.parametrize("payload", PAYLOADS)
def test_encode_then_decode_is_the_identity(target, payload):  # type: ignore[no-untyped-def]
    """Any publication decodes back to the same target, position and byte-exact payload."""
    publication = Publication(target, payload, AT)
    assert decode(encode(publication)) == publication


@pytest.mark.parametrize(
    ("publication", "wire"),
    [
        (Publication(Channel("a/b"), b"hi", AT), b"2ca/b\n9f3c01ab:42\nhi"),
        (Publication(Subtree("a"), b"hi", AT), b"2ta\n9f3c01ab:42\nhi"),
        (Publication(Subtree(""), b"", AT), b"2t\n9f3c01ab:42\n"),
    ],
)
def test_wire_form_is_version_kind_target_position_payload(publication, wire):  # type: ignore[no-untyped-def]
    """The wire form: version, kind, UTF-8 target, newline, position, newline, payload."""
    assert encode(publication) == wire


def test_only_a_published_publication_has_an_envelope() -> None:
    """A publication without a position (not yet published) cannot be encoded."""
    with pytest.raises(ValueError, match="position"):
        encode(Publication(Channel("a"), b"x"))


@settings(deadline=None)
@given(st.sampled_from(TARGETS), st.binary())
def test_arbitrary_binary_payloads_round_trip(target, payload):  # type: ignore[no-untyped-def]
    """Payload bytes pass through the envelope untouched, whatever they are."""
    publication = Publication(target, payload, AT)
    assert decode(encode(publication)) == publication


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"xyz",
        b"2",
        b"2c",
        b"\n",
        b"2\npayload",
        b"1cusers\npayload",
        b"2cusers\npayload",
        b"2cusers\nnot-a-position\npayload",
        b"2xusers\n9f:1\npayload",
        b"2Cusers\n9f:1\npayload",
        b"2cusers",
        b"2c\n9f:1\npayload",
        b"2ca//b\n9f:1\npayload",
        b"2c..\n9f:1\npayload",
        b"2t..\n9f:1\npayload",
        b"2ta/\n9f:1\npayload",
        b"2c/a\n9f:1\npayload",
        b"2c\xff\n9f:1\npayload",
        b"2tcaf\xc3\n9f:1\npayload",
        b"2ca\x00b\n9f:1\npayload",
        b"2c" + b"a" * 256 + b"\n9f:1\npayload",
    ],
)
def test_decode_rejects_malformed_envelopes(data: bytes) -> None:
    """Bytes that are not a valid version-2 envelope raise MalformedEnvelope."""
    with pytest.raises(MalformedEnvelope):
        decode(data)


def test_malformed_envelope_is_a_value_error() -> None:
    """MalformedEnvelope is a ValueError, so generic callers can catch it."""
    assert issubclass(MalformedEnvelope, ValueError)
