"""Which edge a request goes to (web/routing.py): matched on its head, without a server."""

from __future__ import annotations

import pytest
from tornado import httputil

from tornado_channels.web.routing import ChannelMatcher, PresenceMatcher, request_kind


def request(method: str, uri: str, **headers: str) -> httputil.HTTPServerRequest:
    fields = httputil.HTTPHeaders({"Host": "x", **headers})
    start_line = httputil.RequestStartLine(method, uri, "HTTP/1.1")
    return httputil.HTTPServerRequest(start_line=start_line, headers=fields)


@pytest.mark.parametrize(
    ("method", "headers", "kind"),
    [
        ("GET", {"Upgrade": "WebSocket", "Connection": "Upgrade"}, "websocket"),
        ("POST", {}, "publish"),
        ("POST", {"Accept": "text/event-stream"}, "publish"),
        ("GET", {"Accept": "text/event-stream"}, "events"),
        ("GET", {"Accept": "text/html"}, "http"),
        ("HEAD", {}, "http"),
    ],
)
def test_a_request_kind_follows_its_method_and_headers(
    method: str, headers: dict[str, str], kind: str
) -> None:
    """An upgrade is a WebSocket, a POST a publish, an EventSource GET events, the rest http."""
    assert request_kind(request(method, "/users/1", **headers)) == kind


def test_a_channel_rule_matches_below_its_prefix_and_only_its_kind() -> None:
    """/live/users/1 matches the page rule with its path; the reserved /live/_/ never does."""
    pages = ChannelMatcher("/live/", kind="http")
    assert pages.match(request("GET", "/live/users/1")) == {
        "path_args": [],
        "path_kwargs": {"path": "users/1"},
    }
    assert pages.match(request("GET", "/live/_/stats")) is None
    assert pages.match(request("GET", "/elsewhere/users/1")) is None
    assert pages.match(request("POST", "/live/users/1")) is None
    sockets = ChannelMatcher("/live/", kind="websocket")
    assert sockets.match(request("GET", "/live/users/1", Upgrade="websocket")) is not None


def test_the_presence_rule_hands_over_the_rest_still_encoded() -> None:
    """/live/_/presence/caf%C3%A9 gives the handler "caf%C3%A9" to decode and check itself."""
    presence = PresenceMatcher("/live/")
    matched = presence.match(request("GET", "/live/_/presence/caf%C3%A9"))
    assert matched is not None
    assert matched["path_kwargs"]["path"] == "caf%C3%A9"
    assert presence.match(request("GET", "/live/users/1")) is None
