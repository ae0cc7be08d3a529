"""--auth-url and --publish-url on a real tornado-channels process, asking a real HTTP backend."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from tornado.httpclient import HTTPRequest

from ..helpers import EventStream, ServerProcess, closed, connect, get, hang_up, post, receive, run
from ..helpers.hook_backend import HookBackend
from .test_tokens import handshake_status

Start = Callable[..., ServerProcess]

pytestmark = pytest.mark.processes

COOKIE = {"Cookie": "session=u42"}


def test_the_standalone_server_asks_the_backend_to_subscribe_and_publish(
    servers: Start,
) -> None:
    """The flags install the hooks: subscribers asked, users listed, refusals, rewrites, 503."""
    # A WebSocket and an event stream are asked, presence shows their users, a
    # refusal is the backend's 403, a POST and a chat message are rewritten,
    # and a backend too slow to answer is a 503.

    async def scenario() -> None:
        backend = HookBackend().start()
        try:
            server = servers(
                "--auth-url", backend.url, "--publish-url", backend.url, "--auth-timeout", "0.5"
            )
            request = HTTPRequest(f"{server.ws_url}/room", headers=COOKIE)
            ws = await connect(request)  # type: ignore[arg-type]
            stream = await EventStream.open(server.port, "/room", {"Cookie": "session=u7"})
            presence = await get(f"{server.url}/_/presence/room", headers=COOKIE)
            assert sorted(json.loads(presence.body)["users"]) == ["u42", "u7"]
            # The presence query, with the WebSocket's cookie, was answered from the cache.
            assert [body["channel"] for body in backend.received] == ["room"] * 2

            backend.answers[("subscribe", "secret")] = (403, {"message": "not yours"})
            assert await handshake_status(server.port, "/secret") == 403

            backend.answers[("publish", "room")] = (200, b"edited")
            assert (await post(f"{server.url}/room", "raw")).code == 202
            assert await receive(ws) == "edited"
            ws.write_message("typed")
            assert await receive(ws) == "edited"
            events = [await stream.next() for _ in range(3)]  # The recovery outcome first.
            assert [event["data"] for event in events[1:] if event is not None] == ["edited"] * 2
            chat = [body for body in backend.received if body["kind"] == "publish"]
            assert [(body["data"], body["user"]) for body in chat] == [
                ("raw", None), ("typed", "u42"),
            ]  # fmt: skip

            backend.hold = True
            assert await handshake_status(server.port, "/elsewhere") == 503
            backend.release()
            stream.close()
            await hang_up(ws)
        finally:
            await backend.stop()

    run(scenario())


def test_a_backend_that_revokes_closes_the_subscription_with_4001(servers: Start) -> None:
    """A subscription allowed for 1 s is asked again then, and the backend's no closes 4001."""

    async def scenario() -> None:
        backend = HookBackend().start()
        backend.expires_in = 1
        try:
            server = servers("--auth-url", backend.url)
            request = HTTPRequest(f"{server.ws_url}/users/42", headers=COOKIE)
            ws = await connect(request)  # type: ignore[arg-type]
            backend.answers[("subscribe", "users/42")] = (401, {"message": "session ended"})
            code, reason = await closed(ws)
            assert code == 4001
            assert "session ended" in str(reason)
            assert backend.count() == 2
            ws.close()
        finally:
            await backend.stop()

    run(scenario())
