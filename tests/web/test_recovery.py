"""Positions and recovery over WebSockets: nothing lost across a reconnect."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tornado.httpclient import HTTPClientError
from tornado.testing import gen_test
from tornado.web import Application

from tornado_channels import Channel, Node, Publication, make_app
from tornado_channels.brokers.memory import MemoryBroker
from tornado_channels.core.publication import Position, Recovery

from ..helpers import NodeAppTestCase, next_json, receive, silent


async def started(ws: Any) -> str:
    """Read the first message of a fresh positioned client: where it starts."""
    outcome = await next_json(ws)
    assert outcome["recovered"] is True
    assert outcome["missed"] == 0
    return outcome["position"]  # type: ignore[no-any-return]


class RecoveryTest(NodeAppTestCase):
    def make_node(self) -> Node:
        return Node(MemoryBroker(history_size=50))

    @gen_test
    async def test_clients_that_opt_in_get_positions(self) -> None:
        """With ?positions=1 each message arrives as JSON with its position; binary as base64."""
        ws = await self.ws("/news?positions=1")
        start = await started(ws)
        first = await self.publish("/news", "héllo".encode())
        self.assertEqual(int(first.split(":")[1]), int(start.split(":")[1]) + 1)
        second = await self.publish("/news", b"\xff\x00")
        self.assertEqual(await next_json(ws), {"position": first, "data": "héllo"})
        self.assertEqual(await next_json(ws), {"position": second, "binary": "/wA="})

    @gen_test
    async def test_plain_clients_keep_raw_payloads(self) -> None:
        """Without the opt-in, the published bytes arrive as they are (the contract)."""
        ws = await self.ws("/news")
        await self.publish("/news", b"raw")
        self.assertEqual(await receive(ws), "raw")

    @gen_test
    async def test_resuming_gets_every_missed_message_once_then_live(self) -> None:
        """Reconnecting with ?since= replays what was missed (subtrees too), in order, once."""
        ws = await self.ws("/users/1?positions=1")
        await started(ws)
        last = await self.publish("/users/1", b"seen")
        self.assertEqual((await next_json(ws))["position"], last)
        ws.close()
        missed = []
        for number, path in enumerate(["/users/1", "/users/", "/users/2", "/", "/users/1"] * 4):
            position = await self.publish(path, f"m{number}".encode())
            if path != "/users/2":
                missed.append((position, f"m{number}"))
        resumed = await self.ws(f"/users/1?since={last}")
        got = [await next_json(resumed) for _ in missed]
        self.assertEqual([(m["position"], m["data"]) for m in got], missed)
        self.assertEqual(
            await next_json(resumed),
            {"recovered": True, "missed": len(missed), "position": missed[-1][0]},
        )
        live = await self.publish("/users/1", b"live")
        self.assertEqual(await next_json(resumed), {"position": live, "data": "live"})
        await self.quiet(resumed)

    @gen_test
    async def test_a_position_beyond_the_history_is_reported(self) -> None:
        """Resuming from before the kept window says explicitly that recovery failed."""
        ws = await self.ws("/a?positions=1")
        await started(ws)
        first = await self.publish("/a", b"0")
        await next_json(ws)
        ws.close()
        for number in range(60):  # more than history_size=50
            await self.publish("/a", str(number).encode())
        resumed = await self.ws(f"/a?since={first}")
        outcome = await next_json(resumed)
        self.assertFalse(outcome["recovered"])
        self.assertIn("history", outcome["reason"])
        # Where to continue from: the head, past everything published so far.
        self.assertEqual(int(outcome["position"].split(":")[1]), 61)
        live = await self.publish("/a", b"after")
        self.assertEqual(await next_json(resumed), {"position": live, "data": "after"})

    @gen_test
    async def test_a_malformed_position_is_refused_with_400(self) -> None:
        """?since= that is not <epoch>:<seq> gets 400 invalid_position before any upgrade."""
        with self.assertRaises(HTTPClientError) as caught:
            await self.ws("/a?since=yesterday")
        self.assertEqual(caught.exception.code, 400)
        assert caught.exception.response is not None
        self.assertEqual(json.loads(caught.exception.response.body)["error"], "invalid_position")


class EpochTest(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node)

    @gen_test
    async def test_a_position_from_another_history_is_reported(self) -> None:
        """A position from a lost history (another epoch) gets the explicit failure signal."""
        resumed = await self.ws("/a?since=deadbeef:5")
        outcome = await next_json(resumed)
        self.assertEqual(outcome["recovered"], False)
        self.assertIn("epoch", outcome["reason"])


class FreshClientTest(NodeAppTestCase):
    @gen_test
    async def test_a_fresh_client_gets_a_position_to_resume_from(self) -> None:
        """A positioned client that saw nothing yet can still resume: it starts from the head."""
        ws = await self.ws("/quiet?positions=1")
        start = await started(ws)
        ws.close()
        response = await self.http_client.fetch(
            self.get_url("/quiet"), method="POST", body=b"while away"
        )
        missed = json.loads(response.body)["position"]
        resumed = await self.ws(f"/quiet?since={start}")
        self.assertEqual(await next_json(resumed), {"position": missed, "data": "while away"})
        outcome = await next_json(resumed)
        self.assertEqual((outcome["recovered"], outcome["missed"]), (True, 1))


class RacingBroker(MemoryBroker):
    """A memory broker on which a message is published in the middle of every recovery."""

    async def recover(self, channel: Channel, since: Position) -> Recovery:
        await self.publish(Publication(channel, b"during the recovery"))
        return await super().recover(channel, since)


class FailedRecoveryRaceTest(NodeAppTestCase):
    def make_node(self) -> Node:
        return Node(RacingBroker())

    @gen_test
    async def test_messages_held_during_a_failed_recovery_still_arrive(self) -> None:
        """After a failed recovery (another epoch, a higher number), held messages are delivered."""
        resumed = await self.ws("/a?since=deadbeef:500")
        outcome = await next_json(resumed)
        self.assertFalse(outcome["recovered"])
        during = await next_json(resumed)
        self.assertEqual(during["data"], "during the recovery")
        # The position to continue from lies before the held message, not after it.
        self.assertLess(
            int(outcome["position"].split(":")[1]), int(during["position"].split(":")[1])
        )


class RecoveryRaceTest(NodeAppTestCase):
    def make_node(self) -> Node:
        return Node(RacingBroker())

    @gen_test
    async def test_a_message_published_during_a_recovery_arrives_once(self) -> None:
        """A message published while a fresh subscriber's history is read follows its head once."""
        ws = await self.ws("/a?positions=1")
        outcome = await next_json(ws)
        self.assertEqual((outcome["recovered"], outcome["missed"]), (True, 0))
        during = await next_json(ws)
        self.assertEqual(during["data"], "during the recovery")
        self.assertGreater(Position.parse(during["position"]), Position.parse(outcome["position"]))
        await self.quiet(ws)


class LateCopies:
    """Broker events whose live copies arrive ``delay`` seconds late, as Redis's pub/sub can.

    On Redis a history read and a message's pub/sub copy come back on two
    connections: the read may hold a message whose live copy is still on its way.
    """

    def __init__(self, events: Any, delay: float) -> None:
        self._events = events
        self._delay = delay

    def received(self, publication: Publication) -> None:
        asyncio.get_running_loop().call_later(self._delay, self._events.received, publication)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._events, name)


class LateCopyBroker(RacingBroker):
    """A message is published in every recovery, and its live copy arrives after the seam."""

    async def start(self, events: Any) -> None:
        await super().start(LateCopies(events, 0.1))


class LateCopyRaceTest(NodeAppTestCase):
    def make_node(self) -> Node:
        return Node(LateCopyBroker())

    @gen_test
    async def test_a_late_live_copy_of_a_replayed_message_is_not_sent_again(self) -> None:
        """The history replays a message whose live copy comes after the seam: it arrives once."""
        await self.node.publish(Channel("a"), b"before")
        await asyncio.sleep(0.2)  # Its own late copy, to nobody.
        fresh = await self.ws("/a?positions=1")
        head = await next_json(fresh)
        during = await next_json(fresh)
        self.assertEqual(during["data"], "during the recovery")
        # A silence, not a marker: a marker would join the history this test then replays.
        await silent(fresh)  # The late copy came and was dropped.
        resumed = await self.ws(f"/a?since={head['position']}")
        replayed = [await next_json(resumed) for _ in range(2)]
        self.assertEqual(
            [message["data"] for message in replayed], ["during the recovery"] * 2
        )  # The first recovery's message, then this one's.
        outcome = await next_json(resumed)
        self.assertEqual((outcome["recovered"], outcome["missed"]), (True, 2))
        self.assertEqual(outcome["position"], replayed[-1]["position"])
        await silent(resumed)
        live = await self.node.publish(Channel("a"), b"live")
        message = await next_json(resumed)
        self.assertEqual(message, {"position": str(live), "data": "live"})
