"""Server-sent events: a channel as text/event-stream, resumable by event id."""

from __future__ import annotations

import contextlib
import json

from tornado.testing import gen_test
from tornado.web import Application

from tornado_channels import Node, make_app
from tornado_channels.core.frames import CLOSE_GOING_AWAY

from ..helpers import EventStream, NodeAppTestCase


class EventsTestCase(NodeAppTestCase):
    def make_app(self, node: Node) -> Application:
        return make_app(node, sse_heartbeat=0.2)

    def setUp(self) -> None:
        self.streams: list[EventStream] = []
        super().setUp()

    def tearDown(self) -> None:
        # Inside the loop, before it closes: an open transport is a ResourceWarning.
        self.io_loop.run_sync(self.close_streams)
        super().tearDown()

    async def close_streams(self) -> None:
        for stream in self.streams:
            stream.close()
            await stream.writer.wait_closed()

    async def events(self, path: str, headers: dict[str, str] | None = None) -> EventStream:
        """Open a stream; a fresh one (no position given) first says where it starts."""
        stream = await EventStream.open(self.get_http_port(), path, headers)
        self.streams.append(stream)
        if not headers and "lastEventId" not in path:
            start = await stream.next()
            assert start is not None
            self.assertEqual(start["event"], "recovery")
            self.assertEqual(json.loads(start["data"])["missed"], 0)
        return stream


class EventsTest(EventsTestCase):
    """A channel's event stream."""

    @gen_test
    async def test_messages_arrive_as_events_with_their_positions(self) -> None:
        """Each message is an event whose id is its position; lines and binary survive."""
        stream = await self.events("/users/1")
        self.assertEqual(stream.headers["content-type"], "text/event-stream; charset=utf-8")
        self.assertEqual(stream.headers["x-accel-buffering"], "no")
        text = await self.publish("/users/1", b"line one\nline two")
        binary = await self.publish("/users/", b"\xff\x01")
        self.assertEqual(await stream.next(), {"id": text, "data": "line one\nline two"})
        self.assertEqual(await stream.next(), {"id": binary, "event": "binary", "data": "/wE="})

    @gen_test
    async def test_last_event_id_resumes_without_gap_or_duplicate(self) -> None:
        """Reconnecting with Last-Event-ID replays what was missed, says so, then goes live."""
        stream = await self.events("/news")
        seen = await self.publish("/news", b"seen")
        self.assertEqual((await stream.next())["id"], seen)  # type: ignore[index]
        stream.close()
        missed = [await self.publish(path, b"m") for path in ("/news", "/", "/news")]
        resumed = await self.events("/news", {"Last-Event-ID": seen})
        self.assertEqual([(await resumed.next())["id"] for _ in missed], missed)  # type: ignore[index]
        outcome = await resumed.next()
        assert outcome is not None
        self.assertEqual(outcome["event"], "recovery")
        self.assertEqual(
            json.loads(outcome["data"]), {"recovered": True, "missed": 3, "position": missed[-1]}
        )
        live = await self.publish("/news", b"live")
        self.assertEqual(await resumed.next(), {"id": live, "data": "live"})

    @gen_test
    async def test_query_parameter_resumes_like_the_header(self) -> None:
        """?lastEventId= works for clients that cannot set the header."""
        seen = await self.publish("/q", b"seen")
        missed = await self.publish("/q", b"missed")
        resumed = await self.events(f"/q?lastEventId={seen}")
        self.assertEqual(await resumed.next(), {"id": missed, "data": "missed"})
        outcome = await resumed.next()
        assert outcome is not None
        self.assertEqual(json.loads(outcome["data"])["missed"], 1)

    @gen_test
    async def test_a_malformed_last_event_id_is_refused_with_400(self) -> None:
        """A Last-Event-ID that is not a position gets 400 invalid_position."""
        response = await self.http_client.fetch(
            self.get_url("/q"),
            headers={"Accept": "text/event-stream", "Last-Event-ID": "nope"},
            raise_error=False,
        )
        self.assertEqual(response.code, 400)
        self.assertEqual(json.loads(response.body)["error"], "invalid_position")

    @gen_test
    async def test_idle_streams_get_heartbeats(self) -> None:
        """An idle stream carries heartbeat comments, so proxies keep it open."""
        stream = await self.events("/idle")
        with contextlib.suppress(TimeoutError):
            await stream.next(timeout=1.0)  # no event comes: only heartbeats (every 0.2 s)
        self.assertGreaterEqual(stream.comments, 2)

    @gen_test
    async def test_server_close_is_announced_then_the_stream_ends(self) -> None:
        """When the server closes subscribers, the stream says why, then ends."""
        stream = await self.events("/bye")
        self.node.close_subscribers(CLOSE_GOING_AWAY, "server shutting down")
        event = await stream.next()
        assert event is not None
        self.assertEqual(event["event"], "close")
        self.assertEqual(json.loads(event["data"])["code"], CLOSE_GOING_AWAY)
        self.assertIsNone(await stream.next())

    @gen_test
    async def test_pages_and_websockets_keep_their_routes(self) -> None:
        """A plain GET is still the page, and a POST still publishes to event streams."""
        stream = await self.events("/mix")
        page = await self.http_client.fetch(self.get_url("/mix"))
        self.assertIn("text/html", page.headers["Content-Type"])
        position = await self.publish("/mix", b"to the stream")
        self.assertEqual(await stream.next(), {"id": position, "data": "to the stream"})


class SubtreeEventsTest(EventsTestCase):
    """An event stream of a subtree: many channels, each event labelled, resumable."""

    @gen_test
    async def test_a_subtree_stream_labels_each_event_and_resumes_by_event_id(self) -> None:
        """users/ over SSE: each event's data names its channel; Last-Event-ID replays below."""
        stream = await self.events("/users/")
        first = await self.publish("/users/1", "one")
        await self.publish("/other/1", "beside")
        second = await self.publish("/users/", "all")
        got = [await stream.next() for _ in range(2)]
        assert [(e["id"], json.loads(e["data"])) for e in got if e] == [
            (first, {"position": first, "channel": "users/1", "data": "one"}),
            (second, {"position": second, "channel": "users/", "data": "all"}),
        ]
        stream.close()
        third = await self.publish("/users/2/inbox", "line 1\nline 2")
        resumed = await self.events("/users/", {"Last-Event-ID": first})
        replayed = [await resumed.next() for _ in range(2)]
        assert [json.loads(e["data"])["data"] for e in replayed if e] == ["all", "line 1\nline 2"]
        assert replayed[1] is not None
        assert replayed[1]["id"] == third
        outcome = await resumed.next()
        assert outcome is not None
        assert outcome["event"] == "recovery"
        assert json.loads(outcome["data"])["recovered"] is True
