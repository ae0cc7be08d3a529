r"""Publications, their positions, and the envelope that carries them between processes (pure).

Every publication gets a :class:`Position` ``<epoch>:<seq>`` from its
broker's history.  ``seq`` comes from one counter per broker (one Redis, or
one process), so positions order every publication, whichever channel or
subtree it went to; ``epoch`` names the life of that counter, and changes
when the history is lost.

The envelope's wire form (version 2)::

    b"2" + kind + target + b"\n" + position + b"\n" + payload

where ``kind`` is ``b"c"`` (one channel) or ``b"t"`` (a subtree), ``target``
is the channel name or subtree prefix in UTF-8 (names cannot contain a
newline: control characters are invalid), and ``payload`` is the published
bytes, untouched.  No JSON: payloads are arbitrary bytes and are never copied
through a text encoding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .channels import Channel, InvalidChannel, Subtree, Target, validate_name

_VERSION = b"2"
_CHANNEL = b"c"
_SUBTREE = b"t"

_POSITION = re.compile(r"^([0-9a-f]{1,32}):([0-9]{1,19})$")


class InvalidPosition(ValueError):
    """A position string that is not ``<epoch>:<seq>``."""


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where a publication sits in its broker's history."""

    epoch: str
    seq: int

    def __str__(self) -> str:
        return f"{self.epoch}:{self.seq}"

    @classmethod
    def parse(cls, text: str) -> Position:
        """Parse ``<epoch>:<seq>``; raise :class:`InvalidPosition`."""
        match = _POSITION.match(text)
        if match is None:
            raise InvalidPosition(f"not a position (<epoch>:<seq>): {text[:80]!r}")
        return cls(match.group(1), int(match.group(2)))


@dataclass(frozen=True, slots=True)
class Publication:
    """A payload addressed to a channel or a subtree."""

    target: Target
    payload: bytes
    #: Where the broker's history put it; None until published.
    position: Position | None = None
    #: The history partition it came from (see partitions.py); 0 with one partition.
    partition: int = 0


@dataclass(frozen=True, slots=True)
class Receipt:
    """What a broker answers for an accepted publish: its positions, and whether it was a replay.

    ``replayed`` is True when an idempotency key had already published these
    messages: the positions are the first attempt's and nothing new was sent.
    """

    positions: list[Position]
    replayed: bool = False


@dataclass(slots=True)
class Recovery:
    """What reached a channel after a position, in publish order; or why that cannot be had.

    ``complete`` False means something after the position is gone (trimmed,
    expired, or the epoch changed): the client must reload its state rather
    than trust it has everything.
    """

    publications: list[Publication] = field(default_factory=list)
    complete: bool = True
    reason: str = ""


class MalformedEnvelope(ValueError):
    """Bytes from a broker that are not an envelope this version understands."""


def encode_head(target: Target) -> bytes:
    """The envelope up to (not including) its position line."""
    if isinstance(target, Channel):
        return _VERSION + _CHANNEL + target.name.encode("utf-8") + b"\n"
    return _VERSION + _SUBTREE + target.prefix.encode("utf-8") + b"\n"


def encode(publication: Publication) -> bytes:
    """Serialise a published ``publication`` (it has a position) for a broker."""
    if publication.position is None:
        raise ValueError("only a published publication (with a position) has an envelope")
    head = encode_head(publication.target) + str(publication.position).encode() + b"\n"
    return head + publication.payload


def decode(data: bytes, partition: int = 0) -> Publication:
    """Parse bytes produced by :func:`encode`; raise :class:`MalformedEnvelope`.

    ``partition`` is where the broker received it from (the envelope does not say).
    """
    newline = data.find(b"\n")
    if newline < 2 or data[:1] != _VERSION:
        raise MalformedEnvelope("not a version-2 envelope")
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
    end = data.find(b"\n", newline + 1)
    try:
        position = Position.parse(data[newline + 1 : end].decode("ascii")) if end > 0 else None
    except (UnicodeDecodeError, InvalidPosition):
        position = None
    if position is None:
        raise MalformedEnvelope("bad position line")
    return Publication(target, data[end + 1 :], position, partition)
