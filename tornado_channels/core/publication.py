r"""The message envelope carried between processes by a broker (pure).

Wire form, version 2 (version 1 has no position line)::

    b"2" + kind + target + b"\\n" + position + b"\\n" + payload

where ``kind`` is ``b"c"`` (one channel) or ``b"t"`` (a subtree), ``target``
is the channel name or subtree prefix in UTF-8 (names cannot contain a
newline: control characters are invalid), ``position`` is ``<epoch>:<seq>``
(see history.py), and ``payload`` is the published
bytes, untouched.  No JSON: payloads are arbitrary bytes and are never copied
through a text encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.channels import Channel, InvalidChannel, Subtree, Target, validate_name
from ..core.history import InvalidPosition, Position

_VERSION = b"1"
_VERSION_WITH_POSITION = b"2"
_CHANNEL = b"c"
_SUBTREE = b"t"


class MalformedEnvelope(ValueError):
    """Bytes from a broker that are not an envelope this version understands."""


@dataclass(frozen=True, slots=True)
class Publication:
    """A payload addressed to a channel or a subtree."""

    target: Target
    payload: bytes
    #: Where the broker's history put it; None until published.
    position: Position | None = None


def encode_head(target: Target) -> bytes:
    """The version-2 envelope up to (not including) its position line."""
    if isinstance(target, Channel):
        return _VERSION_WITH_POSITION + _CHANNEL + target.name.encode("utf-8") + b"\n"
    return _VERSION_WITH_POSITION + _SUBTREE + target.prefix.encode("utf-8") + b"\n"


def encode(publication: Publication) -> bytes:
    """Serialise ``publication`` (with its position, when it has one) for a broker."""
    if publication.position is not None:
        head = encode_head(publication.target) + str(publication.position).encode() + b"\n"
        return head + publication.payload
    target = publication.target
    if isinstance(target, Channel):
        head = _VERSION + _CHANNEL + target.name.encode("utf-8")
    else:
        head = _VERSION + _SUBTREE + target.prefix.encode("utf-8")
    return head + b"\n" + publication.payload


def decode(data: bytes) -> Publication:
    """Parse bytes produced by :func:`encode`; raise :class:`MalformedEnvelope`."""
    newline = data.find(b"\n")
    if newline < 2 or data[:1] not in (_VERSION, _VERSION_WITH_POSITION):
        raise MalformedEnvelope("not a version-1 or version-2 envelope")
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
    if data[:1] == _VERSION:
        return Publication(target, data[newline + 1 :])
    end = data.find(b"\n", newline + 1)
    try:
        position = Position.parse(data[newline + 1 : end].decode("ascii")) if end > 0 else None
    except (UnicodeDecodeError, InvalidPosition):
        position = None
    if position is None:
        raise MalformedEnvelope("bad position line")
    return Publication(target, data[end + 1 :], position)
