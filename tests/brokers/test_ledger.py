"""The subscription ledger, against a simulated Redis connection (pure, no event loop)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tornado_channels.brokers.ledger import SUBSCRIBE, UNSUBSCRIBE, SubscriptionLedger


class FakeConnection:
    """A pub/sub connection as Redis keeps it: a set of keys, and a reply per key per command."""

    def __init__(self) -> None:
        self.held: set[bytes] = set()
        self.replies: list[tuple[str, bytes, int]] = []

    def send(self, kind: str, keys: list[bytes]) -> None:
        for key in keys:
            if kind == SUBSCRIBE:
                self.held.add(key)
            else:
                self.held.discard(key)
            self.replies.append((kind, key, len(self.held)))

    def deliver(self, ledger: SubscriptionLedger, count: int | None = None) -> None:
        """Hand ``count`` replies (all by default) to the ledger, in order."""
        count = len(self.replies) if count is None else count
        for kind, key, held in self.replies[:count]:
            ledger.acknowledge(kind, key, held)
        del self.replies[:count]


def send_plan(ledger: SubscriptionLedger, redis: FakeConnection) -> None:
    subscribe, unsubscribe = ledger.plan()
    redis.send(SUBSCRIBE, subscribe)
    redis.send(UNSUBSCRIBE, unsubscribe)


def test_a_new_key_is_subscribed_once_and_confirmed_by_its_reply() -> None:
    """Two subscribers of one key make one SUBSCRIBE; the key is confirmed when it is answered."""
    ledger, redis = SubscriptionLedger(), FakeConnection()
    ledger.acquire([b"k"])
    ledger.acquire([b"k"])
    assert ledger.plan() == ([b"k"], [])
    assert not ledger.confirmed(b"k")
    redis.send(SUBSCRIBE, [b"k"])
    redis.deliver(ledger)
    assert ledger.confirmed(b"k")


def test_an_unsubscribe_not_yet_sent_is_cancelled_by_a_new_subscribe() -> None:
    """Release then acquire before the next plan sends nothing: the key stays held."""
    ledger, redis = SubscriptionLedger(), FakeConnection()
    ledger.acquire([b"k"])
    send_plan(ledger, redis)
    redis.deliver(ledger)
    ledger.release([b"k"])
    ledger.acquire([b"k"])
    assert ledger.plan() == ([], [])
    assert ledger.confirmed(b"k")


def test_a_subscribe_after_an_unsubscribe_in_flight_is_sent_after_it() -> None:
    """The old subscriber's UNSUBSCRIBE goes first, the new one's SUBSCRIBE after: it wins."""
    ledger, redis = SubscriptionLedger(), FakeConnection()
    ledger.acquire([b"k"])
    send_plan(ledger, redis)
    redis.deliver(ledger)
    ledger.release([b"k"])
    send_plan(ledger, redis)  # UNSUBSCRIBE k, not yet answered
    ledger.acquire([b"k"])
    assert ledger.plan() == ([b"k"], [])
    redis.send(SUBSCRIBE, [b"k"])
    redis.deliver(ledger, 1)  # the unsubscribe reply
    assert not ledger.confirmed(b"k")
    redis.deliver(ledger)
    assert ledger.confirmed(b"k")
    assert redis.held == {b"k"}


def test_a_waiter_is_released_only_by_the_reply_to_its_own_subscribe() -> None:
    """SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE in flight: only the last reply confirms the key."""
    ledger, redis = SubscriptionLedger(), FakeConnection()
    ledger.acquire([b"k"])
    send_plan(ledger, redis)
    ledger.release([b"k"])
    send_plan(ledger, redis)
    ledger.acquire([b"k"])
    send_plan(ledger, redis)
    redis.deliver(ledger, 1)
    assert not ledger.confirmed(b"k")
    redis.deliver(ledger, 1)
    assert not ledger.confirmed(b"k")
    redis.deliver(ledger)
    assert ledger.confirmed(b"k")


def test_a_self_check_finds_and_repairs_a_key_redis_dropped() -> None:
    """Re-subscribing to every held key raises the count exactly at the one that was missing."""
    ledger, redis = SubscriptionLedger(), FakeConnection()
    ledger.acquire([b"a", b"b", b"c"])
    send_plan(ledger, redis)
    redis.deliver(ledger)
    redis.held.discard(b"b")  # behind the ledger's back
    keys = ledger.plan_check(b"baseline")
    assert sorted(keys) == [b"a", b"b", b"c"]
    redis.send(UNSUBSCRIBE, [b"baseline"])
    redis.send(SUBSCRIBE, keys)
    replies = []
    for kind, key, count in redis.replies:
        replies.append(ledger.acknowledge(kind, key, count))
    assert [reply.key for reply in replies if reply.repaired] == [b"b"]
    assert redis.held == {b"a", b"b", b"c"}
    assert ledger.count == ledger.held() == 3


def test_strays_are_found_by_their_count_and_dropped() -> None:
    """An unasked key shows as a count above what was asked; its UNSUBSCRIBE lowers it."""
    ledger, redis = SubscriptionLedger(), FakeConnection()
    ledger.acquire([b"a"])
    send_plan(ledger, redis)
    redis.deliver(ledger)
    redis.held.add(b"x")
    keys = ledger.plan_check(b"baseline")
    redis.send(UNSUBSCRIBE, [b"baseline"])
    redis.send(SUBSCRIBE, keys)
    redis.deliver(ledger)
    assert ledger.settled
    assert ledger.count > ledger.held()
    keys = ledger.plan_strays([b"a", b"x", b"y"])
    assert keys == [b"x", b"y"]
    redis.send(UNSUBSCRIBE, keys)
    strays = [ledger.acknowledge(k, key, c).stray for k, key, c in redis.replies]
    assert strays == [True, False]
    assert redis.held == {b"a"}


def test_a_reconnection_subscribes_everything_wanted_in_one_command() -> None:
    """A new connection starts empty: the broker's own keys first, then every wanted key."""
    ledger = SubscriptionLedger()
    ledger.acquire([b"a", b"b"])
    ledger.release([b"a"])
    assert ledger.reconnected([b"control"]) == [b"control", b"b"]
    assert not ledger.dirty
    ledger.acknowledge(SUBSCRIBE, b"control", 1)
    assert ledger.confirmed(b"control")
    assert not ledger.confirmed(b"b")


def test_a_reply_that_matches_nothing_sent_is_reported_not_trusted() -> None:
    """An unexpected reply changes no waiter's state."""
    ledger = SubscriptionLedger()
    ledger.acquire([b"a"])
    ledger.plan()
    assert ledger.acknowledge(UNSUBSCRIBE, b"zzz", 0).unexpected
    assert not ledger.confirmed(b"a")


def test_releasing_more_than_acquired_is_harmless() -> None:
    """A spare release neither goes negative nor plans a command."""
    ledger = SubscriptionLedger()
    ledger.release([b"a"])
    assert ledger.plan() == ([], [])
    assert not ledger.wanted(b"a")


OPS = st.lists(
    st.tuples(
        st.sampled_from(["acquire", "release", "plan", "deliver"]),
        st.sampled_from([b"a", b"b", b"c"]),
    ),
    max_size=60,
)


def replay(
    ops: list[tuple[str, bytes]],
) -> tuple[SubscriptionLedger, FakeConnection, dict[bytes, int]]:
    """Run ``ops`` against a fresh ledger and Redis; also return the keys held, by count."""
    ledger, redis = SubscriptionLedger(), FakeConnection()
    held: dict[bytes, int] = {}
    for op, key in ops:
        if op == "acquire":
            ledger.acquire([key])
            held[key] = held.get(key, 0) + 1
        elif op == "release" and held.get(key):
            ledger.release([key])
            held[key] -= 1
        elif op == "plan":
            send_plan(ledger, redis)
        elif op == "deliver":
            redis.deliver(ledger, 1)
    return ledger, redis, held


@given(OPS)
def test_whatever_the_interleaving_redis_ends_up_holding_exactly_what_is_wanted(ops) -> None:  # type: ignore[no-untyped-def]
    """Any order of changes, plans and replies: after a last plan and all replies, Redis matches."""
    ledger, redis, held = replay(ops)
    send_plan(ledger, redis)
    redis.deliver(ledger)
    wanted = {key for key, count in held.items() if count}
    assert redis.held == wanted
    assert all(ledger.confirmed(key) for key in wanted)
    assert ledger.settled
    assert ledger.count == ledger.held() == len(wanted)


@given(OPS)
def test_once_every_subscription_is_released_the_ledger_holds_nothing(ops) -> None:  # type: ignore[no-untyped-def]
    """Any interleaving, then every key released, planned and answered: no per-key state left."""
    ledger, redis, held = replay(ops)
    for key, count in held.items():
        ledger.release([key] * count)
    send_plan(ledger, redis)
    redis.deliver(ledger)
    assert (ledger.keys(), ledger.held(), redis.held) == ([], 0, set())
    assert (ledger._interest, ledger._asked, ledger._dirty, ledger._pending) == ({}, set(), {}, {})
    assert not ledger._expected
