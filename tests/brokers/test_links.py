"""brokers/links.py: one link per partition on a cluster, one for everything otherwise."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from tornado_channels.brokers.keys import KeyLayout
from tornado_channels.brokers.links import Links
from tornado_channels.brokers.settings import BrokerSettings, Reconnection


class Nowhere:
    """A Master that is never asked to connect here (the links are never started)."""

    def describe(self, partition: int) -> str:
        return f"master of {partition}"

    async def open(self, partition: int) -> Redis:
        raise AssertionError("a link that was not started connected")


class Deaf:
    """A LinkListener that hears nothing: these links never connect."""

    def link_received(self, partition: int, key: bytes, data: bytes) -> None:
        raise AssertionError("nothing can arrive on a link that was not started")

    def link_changed(self, partition: int, connected: bool) -> None:
        raise AssertionError("a link that was not started changed state")


def links(partitions: int, sharded: bool) -> Links:
    layout = KeyLayout(b"t:", partitions)
    return Links(
        Nowhere(),
        layout,
        b"node-1",
        Deaf(),
        sharded=sharded,
        settings=BrokerSettings(),
        reconnection=Reconnection(),
    )


def test_a_cluster_has_a_link_per_partition_each_on_its_own_master() -> None:
    """16 partitions sharded: 16 links, partition n's keys on link n, named after its master."""
    cluster = links(16, sharded=True)
    assert not cluster.single
    assert [link.partition for link in cluster] == list(range(16))
    for partition in (0, 7, 15):
        assert cluster.of(partition).partition == partition
        assert cluster.of(partition).name == f"master of {partition}"


def test_without_a_cluster_one_link_carries_every_partition() -> None:
    """Not sharded: one link, which every partition's keys use."""
    one = links(1, sharded=False)
    assert one.single
    assert len(list(one)) == 1
    assert one.of(0) is one.of(5)


def test_keys_taken_and_released_go_to_their_partitions_link() -> None:
    """acquire(partition, keys) lands on that partition's link only; release takes it back."""
    cluster = links(4, sharded=True)
    cluster.acquire(2, [b"t:{2}c:room"])
    held = [link._ledger.wanted(b"t:{2}c:room") for link in cluster]
    assert held == [False, False, True, False]
    cluster.release(2, [b"t:{2}c:room"])
    assert not cluster.of(2)._ledger.wanted(b"t:{2}c:room")


def test_links_not_started_are_not_connected_and_have_counted_nothing() -> None:
    """Before start, the broker built on them is not connected; reconnects and repairs are 0."""
    cluster = links(4, sharded=True)
    assert not cluster.connected
    assert (cluster.reconnects, cluster.repairs) == (0, 0)


@pytest.mark.parametrize("partitions", [1, 16])
def test_each_link_probes_on_its_own_control_channel(partitions: int) -> None:
    """A link's probes go to a channel of its partition, named after the process."""
    every = links(partitions, sharded=partitions > 1)
    layout = KeyLayout(b"t:", partitions)
    for link in every:
        assert link._control_key == layout.control(link.partition, b"node-1")
