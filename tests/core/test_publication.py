"""The broker envelope: a publication's target and payload as bytes, and back."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tornado_channels.core.channels import Channel, Subtree
from tornado_channels.core.publication import MalformedEnvelope, Publication, decode, encode

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


@pytest.mark.parametrize("target", TARGETS, ids=str)
@pytest.mark.parametrize("payload", PAYLOADS)
def test_encode_then_decode_is_the_identity(target, payload):
    """Any publication decodes back to the same target and byte-exact payload."""
    publication = Publication(target, payload)
    assert decode(encode(publication)) == publication


@pytest.mark.parametrize(
    ("publication", "wire"),
    [
        (Publication(Channel("a/b"), b"hi"), b"1ca/b\nhi"),
        (Publication(Subtree("a"), b"hi"), b"1ta\nhi"),
        (Publication(Subtree(""), b""), b"1t\n"),
    ],
)
def test_wire_form_is_version_kind_target_newline_payload(publication, wire):
    """The wire form is version byte, kind byte, UTF-8 target, newline, payload."""
    assert encode(publication) == wire


@settings(deadline=None)
@given(st.sampled_from(TARGETS), st.binary())
def test_arbitrary_binary_payloads_round_trip(target, payload):
    """Payload bytes pass through the envelope untouched, whatever they are."""
    assert decode(encode(Publication(target, payload))) == Publication(target, payload)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"xyz",
        b"1",
        b"1c",
        b"\n",
        b"1\npayload",
        b"2cusers\npayload",
        b"0tusers\npayload",
        b"1xusers\npayload",
        b"1Cusers\npayload",
        b"1cusers",
        b"1c\npayload",
        b"1ca//b\npayload",
        b"1c..\npayload",
        b"1t..\npayload",
        b"1ta/\npayload",
        b"1c/a\npayload",
        b"1c\xff\npayload",
        b"1tcaf\xc3\npayload",
        b"1ca\x00b\npayload",
        b"1c" + b"a" * 256 + b"\npayload",
    ],
)
def test_decode_rejects_malformed_envelopes(data):
    """Bytes that are not a valid version-1 envelope raise MalformedEnvelope."""
    with pytest.raises(MalformedEnvelope):
        decode(data)


def test_malformed_envelope_is_a_value_error():
    """MalformedEnvelope is a ValueError, so generic callers can catch it."""
    assert issubclass(MalformedEnvelope, ValueError)
