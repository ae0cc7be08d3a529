"""Idempotency keys: their grammar, their fingerprint, and their scope per caller (pure)."""

from __future__ import annotations

import pytest

from tornado_channels.core.channels import Channel
from tornado_channels.core.idempotency import (
    MAX_KEY_LENGTH,
    InvalidIdempotencyKey,
    idempotency_for,
    scoped,
)

MESSAGES = [(Channel("a"), b"x")]


def test_the_trusted_caller_keeps_the_key_as_it_is() -> None:
    """No caller (the publish key, Node.publish, RedisPublisher): the key is stored unchanged."""
    assert scoped("order-1", None) == "order-1"
    idempotency = idempotency_for("order-1", MESSAGES)
    assert idempotency is not None
    assert idempotency.key == "order-1"


def test_each_caller_gets_its_own_keys() -> None:
    """One key scoped to two callers gives two stored keys; the same caller always the same one."""
    alice, bob = scoped("order-1", "sub:alice"), scoped("order-1", "sub:bob")
    assert alice != bob
    assert alice == scoped("order-1", "sub:alice")
    for key in (alice, bob):
        prefix, _, rest = key.partition("~")
        assert (len(prefix), rest) == (16, "order-1")
        assert set(prefix) <= set("0123456789abcdef")


def test_the_scope_names_no_one() -> None:
    """The stored key carries a hash of the caller, never the subject or token itself."""
    assert "alice" not in scoped("k", "sub:alice")
    assert scoped("k", "sub:\ud800") != scoped("k", "sub:\ud801")  # any JSON string hashes


def test_a_caller_cannot_reach_another_callers_key_by_choosing_its_own() -> None:
    """Fixed-length prefixes: no (caller, key) pair lands on another caller's stored key."""
    victim = scoped("k", "sub:victim")
    assert scoped(victim, "sub:attacker") != victim
    assert scoped(victim.partition("~")[2], "sub:attacker") != victim


def test_a_key_is_checked_before_it_is_scoped() -> None:
    """The longest valid key is still valid once scoped; an invalid one is refused for anyone."""
    longest = idempotency_for("k" * MAX_KEY_LENGTH, MESSAGES, "sub:u1")
    assert longest is not None
    assert longest.key.endswith("~" + "k" * MAX_KEY_LENGTH)
    for bad in ("", "k" * (MAX_KEY_LENGTH + 1), "with space"):
        with pytest.raises(InvalidIdempotencyKey):
            idempotency_for(bad, MESSAGES, "sub:u1")


def test_the_fingerprint_does_not_depend_on_the_caller() -> None:
    """What was published is fingerprinted alike whoever published it."""
    one, two = idempotency_for("k", MESSAGES, "sub:a"), idempotency_for("k", MESSAGES)
    assert one is not None
    assert two is not None
    assert one.fingerprint == two.fingerprint
