"""The Redis key layout: slots, partition tags, and which keys a channel uses (no Redis needed)."""

from __future__ import annotations

from tornado_channels.brokers.keys import SLOTS, KeyLayout, _crc16, key_slot, partition_tag
from tornado_channels.core.channels import Channel, Subtree, parse_target


def test_slots_are_redis_clusters() -> None:
    """CRC-16/XMODEM mod 16384, hash tags honoured, as Redis documents it."""
    assert key_slot(b"123456789") == 0x31C3
    assert key_slot(b"foo") == 12182
    assert key_slot(b"{user1000}.following") == key_slot(b"{user1000}.followers") == 3443
    # An empty tag is no tag: the whole key is hashed (Redis's own example).
    assert key_slot(b"foo{}{bar}") == _crc16(b"foo{}{bar}") % SLOTS
    assert key_slot(b"foo{{bar}}zap") == key_slot(b"{bar")


def test_each_partition_tag_lies_in_its_share_of_the_slots() -> None:
    """Partitions spread evenly over the slot space, whatever the count."""
    for count in (1, 3, 16, 64, 256):
        slots = [key_slot(b"{" + partition_tag(p, count) + b"}") for p in range(count)]
        if count > 1:
            for partition, slot in enumerate(slots):
                assert partition * SLOTS // count <= slot < (partition + 1) * SLOTS // count
        assert len(set(slots)) == count


def test_a_channel_and_its_subtrees_share_one_partition_and_slot() -> None:
    """users/1/a, users/1/ and users/ live in one partition: one slot for a recovery."""
    layout = KeyLayout(b"p:", 16)
    [(partition, keys)] = layout.subscriptions(Channel("users/1/a"))
    assert {key_slot(key) for key in keys} == {layout.slot(partition)}
    assert layout.partitions_of(Subtree("users/1")) == (partition,)
    assert layout.partitions_of(Subtree("")) == range(16)
    _, streams = layout.recovery_streams(Channel("users/1/a"))
    assert streams == [
        layout.stream(partition, t)
        for t in (Channel("users/1/a"), Subtree(""), Subtree("users"), Subtree("users/1"))
    ]


def test_a_subtree_subscribes_below_it_and_above_it_and_the_root_everywhere() -> None:
    """users/ takes b:users and the root's t:; / takes b: in every partition."""
    layout = KeyLayout(b"p:", 16)
    [(partition, keys)] = layout.subscriptions(Subtree("users/2"))
    base = layout.base(partition)
    assert keys == [base + b"b:users/2", base + b"t:", base + b"t:users"]
    assert [p for p, _ in layout.subscriptions(Subtree(""))] == list(range(16))
    assert layout.recovery_streams(Subtree("users"))[1] == [base + b"h:b:users", base + b"h:t:"]


def test_one_partition_keeps_every_key_in_one_slot() -> None:
    """Standalone and Sentinel: one partition, the same layout (tag "0")."""
    layout = KeyLayout(b"tornado_channels:")
    assert layout.meta(0) == b"tornado_channels:{0}meta"
    assert layout.channel(0, Channel("a")) == b"tornado_channels:{0}c:a"
    assert layout.partitions_of(Subtree("")) == range(1)


def test_presence_keys_live_in_the_partition_of_their_name() -> None:
    """Every presence key of a partition is in its slot; a name counts where its target lives."""
    layout = KeyLayout(b"tc:", 16)
    for partition in range(16):
        assert {key_slot(key) for key in layout.presence(partition)} == {layout.slot(partition)}
        assert layout.presence_events(partition).startswith(layout.base(partition))
    for name in ["users/1", "users/", "users/2/inbox", "/", "rooms/9/"]:
        assert layout.presence_partition(name) == layout.home(parse_target(name.lstrip("/")))
