"""The subscriber trie: exact-channel lookup and strictly-below subtree queries."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from tornado_channels.core.trie import SubscriberTrie


def trie_of(*pairs: tuple[str, str]) -> SubscriberTrie[str]:
    """A trie holding the given (channel, subscriber) pairs."""
    trie: SubscriberTrie[str] = SubscriberTrie()
    for channel, subscriber in pairs:
        trie.add(channel, subscriber)
    return trie


def test_add_reports_a_new_subscription():
    """Adding a new subscription returns True, repeating it returns False."""
    trie: SubscriberTrie[str] = SubscriberTrie()
    assert trie.add("users/1", "alice") is True
    assert trie.add("users/1", "alice") is False
    assert trie.subscribers("users/1") == ["alice"]


def test_discard_reports_a_removed_subscription():
    """Discarding an existing subscription returns True, then False once gone."""
    trie = trie_of(("users/1", "alice"))
    assert trie.discard("users/1", "alice") is True
    assert trie.discard("users/1", "alice") is False
    assert trie.subscribers("users/1") == []


@pytest.mark.parametrize(
    ("channel", "subscriber"),
    [("nowhere", "alice"), ("users/1", "bob"), ("users", "alice")],
)
def test_discard_of_an_absent_subscription_is_false(channel, subscriber):
    """Discarding a subscription that does not exist returns False and changes nothing."""
    trie = trie_of(("users/1", "alice"))
    assert trie.discard(channel, subscriber) is False
    assert (len(trie), trie.subscribers("users/1")) == (1, ["alice"])


def test_subscribers_are_exact_and_in_subscription_order():
    """subscribers() lists only that channel's subscribers, in the order they joined."""
    trie = trie_of(("room", "carol"), ("room", "alice"), ("room/1", "dave"), ("room", "bob"))
    assert trie.subscribers("room") == ["carol", "alice", "bob"]
    assert trie.subscribers("room/1") == ["dave"]
    assert trie.subscribers("ro") == []


def test_resubscribing_moves_to_the_end_of_the_order():
    """A subscriber that leaves and rejoins is delivered to after the others."""
    trie = trie_of(("room", "alice"), ("room", "bob"))
    trie.discard("room", "alice")
    trie.add("room", "alice")
    assert trie.subscribers("room") == ["bob", "alice"]


TREE = (
    ("users", "u"),
    ("users/1", "u1"),
    ("users/1/a", "u1a"),
    ("users/1/a/b/c", "deep"),
    ("users/2", "u2"),
    ("users2", "other"),
    ("users2/1", "other1"),
    ("posts/9", "p9"),
)


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("users", {"u1", "u1a", "deep", "u2"}),
        ("users/1", {"u1a", "deep"}),
        ("users/1/a", {"deep"}),
        ("users/1/a/b", {"deep"}),
        ("users/1/a/b/c", set()),
        ("users2", {"other1"}),
        ("posts", {"p9"}),
        ("user", set()),
        ("missing/x", set()),
        ("", {"u", "u1", "u1a", "deep", "u2", "other", "other1", "p9"}),
    ],
)
def test_below_is_strictly_below_at_any_depth(prefix, expected):
    """below() reaches every channel strictly under the prefix, never the prefix or siblings."""
    found = trie_of(*TREE).below(prefix)
    assert Counter(found) == Counter(expected)


def test_below_counts_each_matching_subscription():
    """A subscriber on two channels below the prefix appears once per channel."""
    trie = trie_of(("a/1", "alice"), ("a/2", "alice"), ("a", "alice"))
    assert trie.below("a") == ["alice", "alice"]
    assert len(trie.below("")) == 3


def test_count_is_per_channel():
    """count() is the number of subscribers of exactly that channel."""
    trie = trie_of(("a", "x"), ("a", "y"), ("a/b", "z"))
    assert [trie.count("a"), trie.count("a/b"), trie.count("b")] == [2, 1, 0]


def test_len_counts_channel_subscriber_pairs():
    """len() counts subscriptions, so one subscriber on two channels counts twice."""
    trie = trie_of(("a", "x"), ("b", "x"), ("b", "y"), ("b", "y"))
    assert len(trie) == 3
    assert trie.discard("c", "x") is False
    assert len(trie) == 3
    trie.discard("b", "y")
    assert len(trie) == 2
    trie.discard("a", "x")
    assert len(trie) == 1


def test_channels_lists_names_with_counts():
    """channels() yields each channel that has subscribers with its count."""
    trie = trie_of(("a", "x"), ("a/b", "x"), ("a/b", "y"), ("c", "z"))
    trie.discard("c", "z")
    assert dict(trie.channels()) == {"a": 1, "a/b": 2}


def test_discarding_everything_prunes_the_trie():
    """Once every subscription is discarded no nodes or index entries remain."""
    trie = trie_of(*TREE, ("users/1", "again"))
    for channel, subscriber in (*TREE, ("users/1", "again")):
        assert trie.discard(channel, subscriber)
    assert trie._root.children == {}
    assert trie._index == {}
    assert (len(trie), trie.below(""), list(trie.channels())) == (0, [], [])


def test_discarding_a_parent_keeps_its_descendants():
    """Removing the last subscriber of `a` keeps `a/b` reachable."""
    trie = trie_of(("a", "x"), ("a/b", "y"), ("a/c", "z"))
    trie.discard("a", "x")
    assert trie.subscribers("a/b") == ["y"]
    assert Counter(trie.below("")) == Counter({"y": 1, "z": 1})
    assert Counter(trie.below("a")) == Counter({"y": 1, "z": 1})
    assert dict(trie.channels()) == {"a/b": 1, "a/c": 1}


def test_discarding_a_child_keeps_its_parent_and_siblings():
    """Removing `a/b` keeps `a` and `a/c` subscribed."""
    trie = trie_of(("a", "x"), ("a/b", "y"), ("a/c", "z"))
    trie.discard("a/b", "y")
    assert (trie.subscribers("a"), trie.below("a")) == (["x"], ["z"])
    assert "b" not in trie._root.children["a"].children


def test_a_pruned_parent_can_be_subscribed_again():
    """A channel whose node survived only as a path to its children can be rejoined."""
    trie = trie_of(("a", "x"), ("a/b", "y"))
    trie.discard("a", "x")
    assert trie.add("a", "w") is True
    assert (trie.subscribers("a"), trie.below("a")) == (["w"], ["y"])
    trie.discard("a/b", "y")
    trie.discard("a", "w")
    assert (trie._root.children, trie._index) == ({}, {})


def test_any_mix_of_channels_and_watchers_leaves_nothing_once_all_leave():
    """Subscribers and watchers of 2,000 random names, gone in random order, leave no node."""
    rng = random.Random(18)
    names = ["/".join(rng.choice("abc") for _ in range(rng.randint(1, 4))) for _ in range(2000)]
    pairs = [(name, f"s{n}", bool(n % 3)) for n, name in enumerate(names)]
    trie: SubscriberTrie[str] = SubscriberTrie()
    for name, subscriber, channel in pairs:
        (trie.add if channel else trie.watch)(name, subscriber)
    rng.shuffle(pairs)
    for name, subscriber, channel in pairs:
        assert (trie.discard if channel else trie.unwatch)(name, subscriber)
    assert (trie.nodes(), len(trie), trie._index) == (0, 0, {})
