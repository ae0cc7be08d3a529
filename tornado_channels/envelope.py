r"""The message envelope carried between processes by a broker (pure).

Wire form, version 1::

    b"1" + kind + target + b"\\n" + payload

where ``kind`` is ``b"c"`` (one channel) or ``b"t"`` (a subtree), ``target``
is the channel name or subtree prefix in UTF-8 (names cannot contain a
newline: control characters are invalid), and ``payload`` is the published
bytes, untouched.  No JSON: payloads are arbitrary bytes and are never copied
through a text encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

from .channels import Channel, InvalidChannel, Subtree, Target, validate_name

_VERSION = b"1"
_CHANNEL = b"c"
_SUBTREE = b"t"


class MalformedEnvelope(ValueError):
    """Bytes from a broker that are not an envelope this version understands."""


@dataclass(frozen=True, slots=True)
class Publication:
    """A payload addressed to a channel or a subtree."""

    target: Target
    payload: bytes


def encode(publication: Publication) -> bytes:
    """Serialise ``publication`` for a broker."""
    target = publication.target
    if isinstance(target, Channel):
        head = _VERSION + _CHANNEL + target.name.encode("utf-8")
    else:
        head = _VERSION + _SUBTREE + target.prefix.encode("utf-8")
    return head + b"\n" + publication.payload


def decode(data: bytes) -> Publication:
    """Parse bytes produced by :func:`encode`; raise :class:`MalformedEnvelope`."""
    newline = data.find(b"\n")
    if newline < 2 or data[:1] != _VERSION:
        raise MalformedEnvelope("not a version-1 envelope")
    kind = data[1:2]
    try:
        name = data[2:newline].decode("utf-8")
        target: Target
        if kind == _CHANNEL:
            target = Channel(validate_name(name))
        elif kind == _SUBTREE:
            target = Subtree(validate_name(name) if name else "")
        else:
            raise MalformedEnvelope(f"unknown target kind {kind!r}")
    except (UnicodeDecodeError, InvalidChannel) as exc:
        raise MalformedEnvelope(f"bad target: {exc}") from None
    return Publication(target, data[newline + 1 :])
