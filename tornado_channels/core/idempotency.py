"""Idempotency keys: a publish that may be retried without being repeated (pure).

A client that did not hear the answer to a publish (a timeout, a dropped
connection, a ``504``) cannot know whether it took effect.  Sent with an
``Idempotency-Key``, the retry is answered with the first attempt's positions
and publishes nothing new, for as long as the broker remembers the key.  The
key is bound to what was published (its *fingerprint*): the same key for a
different request is refused rather than silently answered with another
request's positions.

Keys are scoped to their caller: a token holder's key is remembered under a
short hash of who it is (:func:`scoped`), so a caller who guesses another's
key neither gets its answer nor turns its publish into a ``422``.  Trusted
publishers (the publish key's holders, ``Node.publish``, ``RedisPublisher``,
and anyone on a server with no credentials configured, where no one has an
identity) share the unscoped keys.
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


# Personalizes the caller hash: it is not comparable with any other digest of the same text.
_PERSON = b"tc-idem-caller"


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


def scoped(key: str, caller: str | None) -> str:
    """``key`` as remembered for ``caller`` (an opaque identity; None: the trusted, unscoped one).

    The prefix is a hash of the caller, not the caller: a token's subject
    (or the token itself) must not end up in Redis keys (and a subject is
    any JSON string, lone surrogates included: hashed as they are).  It has a fixed
    length (16 hex digits and ``~``), so two callers' keys never meet.
    """
    if caller is None:
        return key
    digest = hashlib.blake2b(caller.encode("utf-8", "surrogatepass"), digest_size=8, person=_PERSON)
    return f"{digest.hexdigest()}~{key}"


def idempotency_for(
    key: str | None, messages: Iterable[tuple[Target, bytes]], caller: str | None = None
) -> Idempotency | None:
    """The :class:`Idempotency` of ``caller``'s publish of ``messages`` under ``key``.

    None without a key; ``caller`` scopes the key (see :func:`scoped`).
    """
    if key is None:
        return None
    return Idempotency(scoped(parse_key(key), caller), fingerprint(messages))
