"""Idempotency keys: a publish that may be retried without being repeated (pure).

A client that did not hear the answer to a publish (a timeout, a dropped
connection, a ``504``) cannot know whether it took effect.  Sent with an
``Idempotency-Key``, the retry is answered with the first attempt's positions
and publishes nothing new, for as long as the broker remembers the key.  The
key is bound to what was published (its *fingerprint*): the same key for a
different request is refused rather than silently answered with another
request's positions.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .channels import Channel, Target

#: Longest key accepted, in characters.
MAX_KEY_LENGTH = 255
#: Seconds a key is remembered by default.
IDEMPOTENCY_TTL = 300.0

# Visible ASCII only: a key is echoed in logs and stored as a Redis key.
_KEY = re.compile(rf"^[\x21-\x7e]{{1,{MAX_KEY_LENGTH}}}$")


class InvalidIdempotencyKey(ValueError):
    """A key that is empty, too long, or not visible ASCII."""


@dataclass(frozen=True, slots=True)
class Idempotency:
    """A publish's idempotency key and the fingerprint of what it publishes."""

    key: str
    fingerprint: str


def parse_key(text: str) -> str:
    """``text`` if it is a valid key; raise :class:`InvalidIdempotencyKey`."""
    if not _KEY.match(text):
        raise InvalidIdempotencyKey(
            f"an Idempotency-Key is 1 to {MAX_KEY_LENGTH} visible ASCII characters"
        )
    return text


def fingerprint(messages: Iterable[tuple[Target, bytes]]) -> str:
    """A digest of the targets and payloads of a publish, in order."""
    digest = hashlib.blake2b(digest_size=16)
    for target, payload in messages:
        name = target.name if isinstance(target, Channel) else target.prefix + "/"
        encoded = name.encode("utf-8")
        # Lengths first: no two different message lists hash the same bytes.
        digest.update(b"%d:%d:" % (len(encoded), len(payload)))
        digest.update(encoded)
        digest.update(payload)
    return digest.hexdigest()


def idempotency_for(
    key: str | None, messages: Iterable[tuple[Target, bytes]]
) -> Idempotency | None:
    """The :class:`Idempotency` of a publish of ``messages`` under ``key`` (None without one)."""
    if key is None:
        return None
    return Idempotency(parse_key(key), fingerprint(messages))
