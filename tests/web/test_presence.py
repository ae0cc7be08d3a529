"""Presence on one process: counts, users from tokens, subtree rollups, pages, and access."""

from __future__ import annotations

import json
from typing import Any

from tornado.testing import gen_test
from tornado.web import Application

from tornado_channels import Node, make_app

from ..helpers import NodeAppTestCase, receive, until
from .test_tokens import KEY, SECRET, mint


class PresenceTestCase(NodeAppTestCase):
    async def presence(self, path: str, **headers: str) -> tuple[int, dict[str, Any]]:
        response = await self.http_client.fetch(
            self.get_url("/_/presence" + path), raise_error=False, headers=headers
        )
        return response.code, json.loads(response.body)


class OpenPresenceTest(PresenceTestCase):
    """A mount point without keys or tokens: anyone may ask."""

    @gen_test
    async def test_a_channel_counts_its_subscribers_and_falls_when_they_leave(self) -> None:
        """Three subscribers count three; a closed one stops counting."""
        clients = [await self.ws("/users/1") for _ in range(3)]
        await self.ws("/users/2")
        assert await self.presence("/users/1") == (
            200,
            {"channel": "users/1", "subscribers": 3, "users": []},
        )
        clients[0].close()

        async def two() -> bool:
            return bool((await self.presence("/users/1"))[1]["subscribers"] == 2)

        await until(two, what="the count falling to 2")

    @gen_test
    async def test_a_subtree_rolls_up_everything_below_it_in_pages(self) -> None:
        """users/ totals its channels and subtree subscribers; pages list each name once."""
        for path in ["/users/1", "/users/1", "/users/2/inbox", "/users/", "/users", "/other/1"]:
            await self.ws(path)
        code, first = await self.presence("/users/?limit=2")
        assert code == 200
        assert first == {
            "subtree": "users/",
            "subscribers": 4,
            "channels": {"users/": 1, "users/1": 2},
            "cursor": "users/1",
        }
        _, second = await self.presence(f"/users/?limit=2&cursor={first['cursor']}")
        assert second["channels"] == {"users/2/inbox": 1}
        assert second["cursor"] is None
        _, everything = await self.presence("/")
        assert everything["subscribers"] == 6

    @gen_test
    async def test_bad_queries_are_400_naming_the_problem(self) -> None:
        """A bad limit, an empty cursor, or a bad channel is refused with its error code."""
        for query, error in [
            ("/users/?limit=0", "invalid_limit"),
            ("/users/?limit=5000", "invalid_limit"),
            ("/users/?limit=x", "invalid_limit"),
            ("/users/?cursor=", "invalid_cursor"),
            ("/users//x", "invalid_channel"),
        ]:
            code, body = await self.presence(query)
            assert (code, body["error"]) == (400, error), query


class GuardedPresenceTest(PresenceTestCase):
    """A mount point with a publish key and tokens."""

    def make_app(self, node: Node) -> Application:
        return make_app(node, token_secret=SECRET, publish_key=KEY, public=("news/",))

    @gen_test
    async def test_users_come_from_tokens(self) -> None:
        """Each subscriber's token subject is listed once, however many connections it has."""
        await self.ws(f"/users/1?token={mint(['users/'])}")
        await self.ws(f"/users/1?token={mint(['users/'], sub='u7')}")
        await self.ws(f"/users/1?token={mint(['users/'], sub='u7')}")
        code, body = await self.presence("/users/1", Authorization=f"Bearer {KEY}")
        assert (code, body) == (
            200,
            {"channel": "users/1", "subscribers": 3, "users": ["u42", "u7"]},
        )

    @gen_test
    async def test_access_needs_the_key_or_a_granting_token(self) -> None:
        """No credentials: 401; a wrong grant: 403; a granting token, the key, or public: 200."""
        await self.ws(f"/users/1?token={mint(['users/1'])}")
        assert (await self.presence("/users/1"))[0] == 401
        code, body = await self.presence("/users/1", Authorization=f"Bearer {mint(['users/2'])}")
        assert (code, body["error"]) == (403, "forbidden")
        code, body = await self.presence(f"/users/?token={mint(['users/1'])}")
        assert code == 403, "a grant of one channel does not reveal its subtree"
        assert (await self.presence(f"/users/1?token={mint(['users/'])}"))[0] == 200
        assert (await self.presence("/users/", Authorization=f"Bearer {KEY}"))[0] == 200
        assert (await self.presence("/news/1"))[0] == 200
        code, body = await self.presence("/users/1", Authorization="Bearer not.a.token")
        assert (code, body["error"]) == (401, "invalid_token")
        code, body = await self.presence("/users/1", Authorization="Bearer not-a-token")
        assert (code, body) == (403, {"error": "forbidden", "message": "wrong publish key"})


class KeyOnlyPresenceTest(PresenceTestCase):
    """A mount point with a publish key and no tokens."""

    def make_app(self, node: Node) -> Application:
        return make_app(node, publish_key=KEY)

    @gen_test
    async def test_presence_needs_the_key(self) -> None:
        """Without the key 401, with a wrong one 403, with it 200."""
        assert (await self.presence("/a"))[0] == 401
        assert (await self.presence("/a", Authorization="Bearer wrong"))[0] == 403
        assert (await self.presence("/a", Authorization=f"Bearer {KEY}"))[0] == 200


class PresenceEventsTest(PresenceTestCase):
    """Joins and leaves on one process (``?presence=1``)."""

    def make_app(self, node: Node) -> Application:
        return make_app(node, token_secret=SECRET, public=("/",))

    @gen_test
    async def test_a_watcher_hears_first_joins_and_last_leaves_only(self) -> None:
        """u7's first connection is a join, its second nothing, its last one gone a leave."""
        watcher = await self.ws("/room/1?positions=1&presence=1")
        assert json.loads(await receive(watcher))["recovered"] is True
        token = mint(["/"], sub="u7")
        first = await self.ws(f"/room/1?token={token}")
        assert json.loads(await receive(watcher)) == {
            "presence": "join",
            "user": "u7",
            "channel": "room/1",
        }
        second = await self.ws(f"/room/1?token={token}")
        first.close()
        await self.quiet(watcher)
        second.close()
        assert json.loads(await receive(watcher)) == {
            "presence": "leave",
            "user": "u7",
            "channel": "room/1",
        }

    @gen_test
    async def test_only_watchers_hear_presence_and_raw_streams_cannot_ask(self) -> None:
        """Without ?presence=1 nothing but messages arrives; a raw stream asking is a 400."""
        plain = await self.ws("/room/2?positions=1")
        assert json.loads(await receive(plain))["recovered"] is True
        await self.ws(f"/room/2?token={mint(['/'], sub='u8')}")
        await self.quiet(plain)
        response = await self.http_client.fetch(
            self.get_url("/room/2?presence=1"),
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version": "13",
            },
            raise_error=False,
        )
        assert response.code == 400
        assert json.loads(response.body)["error"] == "invalid_presence"
