"""A publish's body as it arrives: kept up to its limit, counted and dropped after a refusal."""

from __future__ import annotations

from tornado_channels.web.errors import ApiError
from tornado_channels.web.limits import http_server_options
from tornado_channels.web.publish_body import DISCARD_LIMIT, PublishBody

REFUSAL = ApiError(403, "forbidden", "no")


def test_a_body_within_the_limit_is_kept_whole() -> None:
    """Chunks up to the limit are kept in order, and nothing is refused."""
    body = PublishBody(6)
    assert body.receive(b"abc") is None
    assert body.receive(b"def") is None
    assert (bytes(body.data), body.too_large) == (b"abcdef", False)


def test_a_body_past_the_limit_keeps_nothing() -> None:
    """The chunk that passes the limit drops what was kept; later chunks are not kept either."""
    body = PublishBody(5)
    assert body.receive(b"abc") is None
    assert body.receive(b"def") is None
    assert body.too_large
    assert bytes(body.data) == b""
    assert body.receive(b"g") is None
    assert bytes(body.data) == b""


def test_a_refused_body_is_counted_not_kept() -> None:
    """After a refusal, chunks are counted and dropped, and the refusal waits within bounds."""
    body = PublishBody(100)
    body.discard(REFUSAL)
    assert body.refusal is REFUSAL
    assert body.receive(b"x" * 10) is None
    assert body.receive(b"y" * 10) is None
    assert (bytes(body.data), body.discarded, body.too_large) == (b"", 20, False)


def test_a_refusal_waits_for_the_body_no_further_than_the_discard_limit() -> None:
    """Up to DISCARD_LIMIT bytes the refusal waits; the chunk past it asks for it at once."""
    body = PublishBody(100)
    body.discard(REFUSAL)
    assert body.receive(b"x" * DISCARD_LIMIT) is None
    assert body.receive(b"x") is REFUSAL
    assert body.discarded == DISCARD_LIMIT + 1


def test_the_discard_limit_is_what_the_mounted_routes_size_tornados_server_for() -> None:
    """http_server_options reads at least DISCARD_LIMIT, so a waiting refusal reaches the client."""
    assert http_server_options(max_message_size=1, max_batch_bytes=1)["max_body_size"] == (
        DISCARD_LIMIT
    )
