"""The presence tally and its pages, without an event loop."""

from __future__ import annotations

from tornado_channels.core.channels import Channel, Subtree
from tornado_channels.core.presence import (
    PresenceTally,
    decode_value,
    encode_value,
    merge_pages,
    page,
    presence_name,
    start_after,
)


def test_names_are_channels_subtrees_and_the_root() -> None:
    """A channel counts under its name, a subtree under its prefix and a slash, the root as /."""
    assert presence_name(Channel("users/1")) == "users/1"
    assert presence_name(Subtree("users")) == "users/"
    assert presence_name(Subtree("")) == "/"


def test_counts_and_users_follow_adds_and_discards() -> None:
    """Each subscription counts once; a user is listed while any of theirs remains."""
    tally = PresenceTally()
    tally.add("users/1", "u1")
    tally.add("users/1", "u1")
    tally.add("users/1", "u2")
    tally.add("users/1")
    assert tally.count("users/1") == 4
    assert tally.users("users/1") == ["u1", "u2"]
    tally.discard("users/1", "u1")
    assert tally.users("users/1") == ["u1", "u2"]
    tally.discard("users/1", "u1")
    tally.discard("users/1", "u2")
    assert tally.users("users/1") == []
    tally.discard("users/1")
    assert tally.count("users/1") == 0
    assert len(tally) == 0, "a name without subscriptions is forgotten"
    assert not tally.segments


def test_changes_are_taken_once_and_can_be_restored() -> None:
    """What changed is handed out once; a failed publication puts it back."""
    tally = PresenceTally()
    tally.add("a/1")
    tally.add("b/")
    tally.discard("a/1")
    assert tally.take_changes() == ["a/1", "b/"]
    assert tally.take_changes() == []
    tally.restore(["a/1"])
    assert tally.changed
    assert tally.value("a/1") == "", "a name that is gone is sent as empty"
    assert tally.value("b/") == "1"


def test_values_round_trip() -> None:
    """A process's entry keeps its count and users."""
    assert decode_value(encode_value(3, ["u1", "u7"])) == (3, ["u1", "u7"])
    assert decode_value(encode_value(2, [])) == (2, [])


def test_below_counts_the_subtree_and_pages_its_names() -> None:
    """users/ adds up itself and everything below, never users or userspace/; pages in order."""
    tally = PresenceTally()
    for name in ["users/2/inbox", "users/1", "users/", "users/2/", "users", "userspace/1"]:
        tally.add(name)
    tally.add("users/1")
    first = tally.below("users/", None, 2)
    assert first.subscribers == 5
    assert first.channels == {"users/": 1, "users/1": 2}
    assert first.cursor == "users/1"
    second = tally.below("users/", first.cursor, 2)
    assert second.channels == {"users/2/": 1, "users/2/inbox": 1}
    assert second.cursor is None
    everything = tally.below("", None, 100)
    assert everything.subtree == "/"
    assert everything.subscribers == 7
    assert len(everything.channels) == 6


def test_a_cursor_before_the_prefix_starts_at_the_prefix() -> None:
    """A cursor from elsewhere cannot reach names outside the subtree."""
    assert start_after("users/", "a") is None
    assert start_after("users/", "users/5") == "users/5"
    tally = PresenceTally()
    tally.add("b/1")
    tally.add("users/1")
    assert tally.below("users/", "a", 10).channels == {"users/1": 1}


def test_pages_of_partitions_merge_in_order() -> None:
    """The root's pages from each partition merge into one page in name order."""
    merged = merge_pages([[("a", 1), ("c", 2)], [("b", 3), ("d", 4)]])
    result = page("/", 10, merged, 3)
    assert list(result.channels) == ["a", "b", "c"]
    assert result.cursor == "c"
    assert page("/", 1, [("a", 1)], 3).cursor is None


def test_segments_are_counted_for_metrics_and_forgotten_at_zero() -> None:
    """Subscriptions add up per top-level segment; a segment without any is dropped."""
    tally = PresenceTally()
    tally.add("users/1")
    tally.add("users/")
    tally.add("/")
    tally.add("rooms/9/chat")
    assert dict(tally.segments) == {"users": 2, "/": 1, "rooms": 1}
    tally.discard("rooms/9/chat")
    assert "rooms" not in tally.segments
