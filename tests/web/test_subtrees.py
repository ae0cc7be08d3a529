"""Subtree subscriptions on one process: everything below a prefix, once, labelled, resumable."""

from __future__ import annotations

import json

from tornado.testing import gen_test

from tornado_channels.core.frames import CLOSE_POLICY_VIOLATION

from ..helpers import NodeAppTestCase, receive


class SubtreeTest(NodeAppTestCase):
    """An app on the embedded broker."""

    @gen_test
    async def test_a_subtree_subscriber_hears_everything_below_once(self) -> None:
        """users/ hears its channels, the subtrees at and below it, the root; never its siblings."""
        below = await self.ws("/users/")
        targets = ["/users/1", "/users/2/inbox", "/users/", "/users/2/", "/"]
        for number, path in enumerate(targets):
            await self.publish(path, f"m{number}")
        for path in ("/users", "/userspace/1", "/other/"):
            await self.publish(path, "not below")
        assert [await receive(below) for _ in targets] == [f"m{n}" for n in range(5)]
        await self.quiet(below)

    @gen_test
    async def test_the_root_subscriber_hears_every_publish(self) -> None:
        """ws://host/ hears every channel and subtree publish, once each."""
        everything = await self.ws("/")
        paths = ["/a", "/a/b/c", "/a/", "/", "/z/9"]
        for number, path in enumerate(paths):
            await self.publish(path, str(number))
        assert [await receive(everything) for _ in paths] == ["0", "1", "2", "3", "4"]
        await self.quiet(everything)

    @gen_test
    async def test_positions_say_where_each_message_was_published(self) -> None:
        """With ?positions=1 each message names its channel or subtree."""
        ws = await self.ws("/users/?positions=1")
        start = json.loads(await receive(ws))
        assert start["recovered"] is True
        first = await self.publish("/users/7", "seven")
        second = await self.publish("/users/", "all")
        assert json.loads(await receive(ws)) == {
            "position": first,
            "channel": "users/7",
            "data": "seven",
        }
        assert json.loads(await receive(ws)) == {
            "position": second,
            "channel": "users/",
            "data": "all",
        }

    @gen_test
    async def test_a_subtree_subscriber_resumes_what_reached_below_it(self) -> None:
        """After a drop, ?since= replays what was published below, in order, once."""
        ws = await self.ws("/users/?positions=1")
        since = json.loads(await receive(ws))["position"]
        ws.close()
        expected = []
        for number, path in enumerate(["/users/1", "/other/1", "/users/2/x", "/", "/users/"] * 4):
            position = await self.publish(path, f"m{number}")
            if not path.startswith("/other"):
                expected.append((position, f"m{number}"))
        resumed = await self.ws(f"/users/?since={since}")
        got = [json.loads(await receive(resumed)) for _ in expected]
        assert [(m["position"], m["data"]) for m in got] == expected
        outcome = json.loads(await receive(resumed))
        assert outcome == {"recovered": True, "missed": len(expected), "position": expected[-1][0]}

    @gen_test
    async def test_a_subtree_subscriber_cannot_chat(self) -> None:
        """A frame from a subtree subscriber is refused with 1008: no one channel to publish to."""
        ws = await self.ws("/users/")
        await ws.write_message("hello?")
        assert await ws.read_message() is None
        assert ws.close_code == CLOSE_POLICY_VIOLATION
