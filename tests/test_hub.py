"""The hub: local subscribers by channel, and the isolating broadcast to them."""

from __future__ import annotations

import logging

import pytest

from tornado_channels.core import frames
from tornado_channels.core.channels import Channel, Subtree
from tornado_channels.core.deflate import Deflate
from tornado_channels.core.frames import Encoding
from tornado_channels.core.partitions import partition_of_segment
from tornado_channels.core.publication import Position, Publication
from tornado_channels.hub import Hub


class FakeSubscriber:
    """Records frames and close calls; its buffer size and failures are settable."""

    def __init__(
        self,
        name: str,
        buffered: int = 0,
        fail_send: bool = False,
        fail_close: bool = False,
    ) -> None:
        self.name = name
        self.buffered = buffered
        self.fail_send = fail_send
        self.fail_close = fail_close
        self.frames: list[bytes] = []
        self.seqs: list[int] = []
        self.closes: list[tuple[int | None, str | None]] = []

    encoding = Encoding.RAW
    deflate: Deflate | None = None
    recovering = False

    def send_frame(self, frame: bytes, seq: int = 0) -> None:
        if self.fail_send:
            raise OSError("stream closed")
        self.frames.append(frame)
        self.seqs.append(seq)

    def buffered_bytes(self) -> int:
        return self.buffered

    def offer(self, frame: bytes, seq: int, limit: int) -> bool:
        if self.buffered_bytes() > limit:
            return False
        self.send_frame(frame, seq)
        return True

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self.closes.append((code, reason))
        if self.fail_close:
            raise OSError("already closed")

    def __repr__(self) -> str:
        return f"FakeSubscriber({self.name!r})"


@pytest.fixture
def hub() -> Hub:
    """A hub that tolerates 100 unread bytes per subscriber."""
    return Hub(max_buffered_bytes=100)


def subscribe(hub: Hub, channel: str, **kwargs) -> FakeSubscriber:
    """A fresh fake subscriber added to ``channel`` on ``hub``."""
    subscriber = FakeSubscriber(channel, **kwargs)
    assert hub.add(Channel(channel), subscriber)
    return subscriber


@pytest.fixture(autouse=True)
def quiet_hub_log(caplog):
    """Capture the hub's logged tracebacks instead of printing them."""
    caplog.set_level(logging.CRITICAL + 1, logger="tornado_channels.hub")


# --- Delivery ---------------------------------------------------------------


def test_channel_publication_reaches_exactly_that_channel(hub):
    """A channel publication reaches that channel's subscribers as one encoded frame."""
    on, also_on = subscribe(hub, "users/1"), subscribe(hub, "users/1")
    parent, child, sibling = (
        subscribe(hub, "users"),
        subscribe(hub, "users/1/a"),
        subscribe(hub, "users/10"),
    )
    sent = hub.deliver([Publication(Channel("users/1"), b"hello")])
    assert sent == 2
    assert on.frames == also_on.frames == [frames.encode_frame(b"hello")]
    assert parent.frames == child.frames == sibling.frames == []


def test_binary_payload_is_sent_as_a_binary_frame(hub):
    """A non-UTF-8 payload is delivered in the frame encode_frame builds for it."""
    subscriber = subscribe(hub, "bin")
    hub.deliver([Publication(Channel("bin"), b"\xff\x00")])
    assert subscriber.frames == [frames.encode_frame(b"\xff\x00")]
    assert subscriber.frames[0][0] & 0x0F == frames.OPCODE_BINARY


def test_subtree_publication_reaches_strictly_below_only(hub):
    """A subtree publication reaches channels below the prefix, not the prefix or siblings."""
    below = [
        subscribe(hub, "users/1"),
        subscribe(hub, "users/1/a"),
        subscribe(hub, "users/2"),
    ]
    outside = [
        subscribe(hub, "users"),
        subscribe(hub, "users2"),
        subscribe(hub, "posts/1"),
    ]
    sent = hub.deliver([Publication(Subtree("users"), b"news")])
    assert sent == 3
    assert all(s.frames == [frames.encode_frame(b"news")] for s in below)
    assert all(s.frames == [] for s in outside)


def test_root_subtree_publication_reaches_everyone(hub):
    """A publication to the root subtree reaches every subscriber."""
    everyone = [subscribe(hub, "a"), subscribe(hub, "a/b"), subscribe(hub, "c")]
    assert hub.deliver([Publication(Subtree(""), b"all")]) == 3
    assert all(len(s.frames) == 1 for s in everyone)


def test_each_root_copy_reaches_only_its_partitions_channels():
    """With partitions, the root's copies delivered together reach each channel exactly once."""
    hub = Hub(partitions=16)
    names = [f"s{n}/1" for n in range(20)]
    subscribers = [subscribe(hub, name) for name in names]
    copies = [Publication(Subtree(""), b"all", Position("e", 1), p) for p in range(16)]
    assert hub.deliver(copies) == len(names)
    assert all(s.frames == [b"\x81\x03all"] for s in subscribers)
    assert [len(hub.subscribers(p)) for p in range(16)] == [
        sum(partition_of_segment(name.split("/")[0], 16) == p for name in names) for p in range(16)
    ]


def test_subscriber_on_two_matching_channels_gets_two_frames(hub):
    """One message per matching subscription: two channels below the prefix, two frames."""
    subscriber = FakeSubscriber("both")
    hub.add(Channel("room/1"), subscriber)
    hub.add(Channel("room/2"), subscriber)
    assert hub.deliver([Publication(Subtree("room"), b"x")]) == 2
    assert subscriber.frames == [frames.encode_frame(b"x")] * 2


def test_consecutive_publications_to_a_channel_go_out_in_one_write(hub):
    """Messages to one channel delivered together reach each subscriber as one joined write."""
    first, second = subscribe(hub, "room"), subscribe(hub, "room")
    sent = hub.deliver([Publication(Channel("room"), b"%d" % i) for i in range(3)])
    assert sent == 6
    joined = b"".join(frames.encode_frame(b"%d" % i) for i in range(3))
    assert first.frames == second.frames == [joined]
    assert hub.delivered == 6


def test_interleaved_targets_keep_publish_order(hub):
    """Publications to a channel and to its subtree, interleaved, arrive in publish order."""
    subscriber = subscribe(hub, "room/1")
    hub.deliver(
        [
            Publication(Channel("room/1"), b"a"),
            Publication(Subtree("room"), b"b"),
            Publication(Subtree("room"), b"c"),
            Publication(Channel("room/1"), b"d"),
        ]
    )
    assert b"".join(subscriber.frames) == b"".join(
        frames.encode_frame(p) for p in (b"a", b"b", b"c", b"d")
    )
    assert len(subscriber.frames) == 3


def test_a_recovering_subscriber_gets_one_frame_per_message(hub):
    """A subscriber that is recovering gets each message as its own frame, with its number."""
    subscriber = subscribe(hub, "room")
    subscriber.recovering = True
    numbered = [Publication(Channel("room"), b"%d" % i, Position("e", i)) for i in range(1, 4)]
    assert hub.deliver(numbered) == 3
    assert subscriber.frames == [frames.encode_frame(b"%d" % i) for i in range(1, 4)]
    assert subscriber.seqs == [1, 2, 3]


@pytest.mark.parametrize("target", [Channel("nobody"), Subtree("nobody"), Subtree("")])
def test_delivery_without_subscribers_sends_nothing(hub, target):
    """Delivering where nobody listens returns 0 and counts nothing."""
    assert hub.deliver([Publication(target, b"x")]) == 0
    assert hub.delivered == 0


def test_delivered_accumulates_across_deliveries(hub):
    """hub.delivered counts every frame sent, over all deliveries."""
    subscribe(hub, "a")
    subscribe(hub, "a")
    subscribe(hub, "b")
    hub.deliver([Publication(Channel("a"), b"1")])
    hub.deliver([Publication(Channel("b"), b"2")])
    hub.deliver([Publication(Channel("none"), b"3")])
    assert hub.delivered == 3


# --- Isolation of failing and slow subscribers -------------------------------


def test_failing_subscriber_is_closed_and_others_still_receive(hub):
    """A subscriber whose write raises is closed as an internal error; the rest receive."""
    first = subscribe(hub, "room")
    broken = subscribe(hub, "room", fail_send=True)
    last = subscribe(hub, "room")
    sent = hub.deliver([Publication(Channel("room"), b"hi")])
    assert sent == 2
    assert first.frames == last.frames == [frames.encode_frame(b"hi")]
    assert broken.frames == []
    assert [code for code, _ in broken.closes] == [frames.CLOSE_INTERNAL_ERROR]
    assert first.closes == last.closes == []
    assert (hub.error_disconnects, hub.slow_disconnects, hub.delivered) == (1, 0, 2)


def test_failure_is_logged(hub, caplog):
    """A failed write is logged with its exception."""
    caplog.set_level(logging.ERROR, logger="tornado_channels.hub")
    subscribe(hub, "room", fail_send=True)
    hub.deliver([Publication(Channel("room"), b"hi")])
    assert any(record.exc_info for record in caplog.records)


def test_failing_close_does_not_break_the_broadcast(hub):
    """A subscriber whose send and close both raise does not stop the others."""
    broken = subscribe(hub, "room", fail_send=True, fail_close=True)
    healthy = subscribe(hub, "room")
    assert hub.deliver([Publication(Channel("room"), b"hi")]) == 1
    assert healthy.frames == [frames.encode_frame(b"hi")]
    assert broken.closes
    assert hub.error_disconnects == 1


def test_slow_consumer_is_closed_without_a_frame(hub):
    """A subscriber with more than max_buffered_bytes unread is closed and skipped."""
    slow = subscribe(hub, "room", buffered=101)
    fast = subscribe(hub, "room", buffered=0)
    assert hub.deliver([Publication(Channel("room"), b"hi")]) == 1
    assert slow.frames == []
    assert [code for code, _ in slow.closes] == [frames.CLOSE_SLOW_CONSUMER]
    assert fast.frames == [frames.encode_frame(b"hi")]
    assert (hub.slow_disconnects, hub.error_disconnects, hub.delivered) == (1, 0, 1)


def test_slow_disconnects_count_every_slow_subscriber(hub):
    """Each slow subscriber skipped adds one to slow_disconnects."""
    for _ in range(3):
        subscribe(hub, "room", buffered=10_000)
    hub.deliver([Publication(Channel("room"), b"1")])
    hub.deliver([Publication(Channel("room"), b"2")])
    assert (hub.slow_disconnects, hub.delivered) == (6, 0)


def test_subscriber_exactly_at_the_limit_still_receives(hub):
    """Exactly max_buffered_bytes unread is within bounds: the frame is sent."""
    full = subscribe(hub, "room", buffered=100)
    assert hub.deliver([Publication(Channel("room"), b"hi")]) == 1
    assert (full.frames, full.closes) == ([frames.encode_frame(b"hi")], [])


def test_large_message_reaches_an_idle_subscriber(hub):
    """A message larger than the bound still reaches a subscriber with nothing unread."""
    idle = subscribe(hub, "room")
    payload = b"x" * 1000
    assert hub.deliver([Publication(Channel("room"), payload)]) == 1
    assert idle.frames == [frames.encode_frame(payload)]


def test_slow_consumer_whose_close_raises_does_not_break_the_broadcast(hub):
    """A slow consumer whose close raises is skipped and the others still receive."""
    slow = subscribe(hub, "room", buffered=101, fail_close=True)
    fast = subscribe(hub, "room")
    assert hub.deliver([Publication(Channel("room"), b"hi")]) == 1
    assert slow.frames == []
    assert fast.frames == [frames.encode_frame(b"hi")]


def test_slow_consumer_whose_close_raises_is_counted_once_as_slow(hub):
    """A slow consumer whose close raises counts only as slow and is closed once."""
    slow = subscribe(hub, "room", buffered=101, fail_close=True)
    hub.deliver([Publication(Channel("room"), b"hi")])
    assert (hub.slow_disconnects, hub.error_disconnects) == (1, 0)
    assert [code for code, _ in slow.closes] == [frames.CLOSE_SLOW_CONSUMER]


# --- Bookkeeping --------------------------------------------------------------


def test_add_and_discard_report_changes(hub):
    """Add and discard return whether the subscription changed."""
    subscriber = FakeSubscriber("s")
    assert hub.add(Channel("a"), subscriber) is True
    assert hub.add(Channel("a"), subscriber) is False
    assert hub.discard(Channel("a"), subscriber) is True
    assert hub.discard(Channel("a"), subscriber) is False


def test_discarded_subscriber_receives_nothing(hub):
    """After discard, deliveries to the channel skip the subscriber."""
    gone, staying = subscribe(hub, "a"), subscribe(hub, "a")
    hub.discard(Channel("a"), gone)
    assert hub.deliver([Publication(Channel("a"), b"x")]) == 1
    assert (gone.frames, len(staying.frames)) == ([], 1)


def test_count_channels_subscribers_and_len(hub):
    """count, channels, subscribers and len describe the current subscriptions."""
    shared = FakeSubscriber("shared")
    hub.add(Channel("a"), shared)
    hub.add(Channel("a/b"), shared)
    other = subscribe(hub, "a")
    assert (
        hub.count(Channel("a")),
        hub.count(Channel("a/b")),
        hub.count(Channel("z")),
    ) == (
        2,
        1,
        0,
    )
    assert hub.channels() == {"a": 2, "a/b": 1}
    assert sorted(hub.subscribers(), key=id) == sorted([shared, shared, other], key=id)
    assert len(hub) == 3
    hub.discard(Channel("a/b"), shared)
    assert (len(hub), hub.channels()) == (2, {"a": 2})


def test_default_bound_is_one_mebibyte():
    """Without an explicit bound a subscriber may leave 1 MiB unread."""
    assert Hub().max_buffered_bytes == 1 << 20


def test_joined_writes_stay_small():
    """Messages delivered together are joined into writes of at most 64 KiB, in order."""
    subscriber = subscribe(hub := Hub(), "room")
    payloads = [bytes([65 + i]) * 30000 for i in range(5)]
    assert hub.deliver([Publication(Channel("room"), p) for p in payloads]) == 5
    assert all(len(write) <= 1 << 16 for write in subscriber.frames)
    assert len(subscriber.frames) == 3
    assert b"".join(subscriber.frames) == b"".join(frames.encode_frame(p) for p in payloads)
