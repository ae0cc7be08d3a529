"""The strict HTTP/1.1 request reader (pure: bytes in, heads and bodies out)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tornado_channels.core.http1 import (
    END,
    MAX_FIELDS,
    MAX_HEAD,
    BadRequest,
    RequestHead,
    RequestReader,
)


def events(data: bytes, pieces: list[int] | None = None) -> list[object]:
    """Everything the reader hands out for ``data`` fed whole (or in ``pieces``)."""
    reader = RequestReader()
    out: list[object] = []
    chunks = [data] if pieces is None else split(data, pieces)
    for chunk in chunks:
        reader.feed(chunk)
        while (event := reader.next()) is not None:
            out.append(event)
    return out


def split(data: bytes, pieces: list[int]) -> list[bytes]:
    cuts = sorted({cut % (len(data) + 1) for cut in pieces})
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def normalized(out: list[object]) -> list[object]:
    """Heads as (method, target), body pieces joined, END kept: the same whatever the split."""
    result: list[object] = []
    for event in out:
        if isinstance(event, RequestHead):
            result.append((event.method, event.target))
        elif isinstance(event, bytes):
            if result and isinstance(result[-1], bytes):
                result[-1] += event
            else:
                result.append(event)
        else:
            result.append(event)
    return result


def refusal(data: bytes) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        events(data)
    return caught.value


# --- Reading -----------------------------------------------------------------------


def test_a_head_gives_its_line_fields_and_framing() -> None:
    """Method, target, version, fields in order, and how the body is framed."""
    [head, end] = events(b"GET /users/1?x=1 HTTP/1.1\r\nHost: h\r\nX-A:  b c \r\n\r\n")
    assert isinstance(head, RequestHead)
    assert (head.method, head.target, head.version) == ("GET", "/users/1?x=1", "HTTP/1.1")
    assert head.fields == [("Host", "h"), ("X-A", "b c")]
    assert head.field("x-a") == "b c"
    assert head.keep_alive
    assert not head.has_body
    assert end is END


def test_a_fixed_length_body_comes_whole_then_end() -> None:
    """Content-Length bytes, then END; what follows is the next request."""
    out = events(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhelloGET")
    assert normalized(out) == [("POST", "/a"), b"hello", END]


def test_a_chunked_body_with_extensions_and_trailers() -> None:
    """Chunks are joined; extensions and trailer fields are read and dropped."""
    data = (
        b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"
        b"5;name=value\r\nhello\r\nA\r\n, world!!!\r\n0\r\nX-T: 1\r\n\r\n"
    )
    assert normalized(events(data)) == [("POST", "/a"), b"hello, world!!!", END]


def test_pipelined_requests_come_one_after_another() -> None:
    """Two requests in one read: head, body, END, head, END."""
    data = (
        b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx"
        b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    assert normalized(events(data)) == [("POST", "/a"), b"x", END, ("GET", "/b"), END]


def test_empty_lines_before_a_request_are_ignored() -> None:
    """RFC 9112 2.2: empty lines before a request line are read and dropped."""
    out = events(b"\r\n\r\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n")
    assert normalized(out) == [("GET", "/a"), END]


@pytest.mark.parametrize(
    "data",
    [
        b"GET /a HTTP/1.1\nHost: h\n\n",
        b"GET /a HTTP/1.1\r\nHost: h\n\r\n",
        b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\n\r\nab\r\n\r\n",
    ],
    ids=["all bare LF", "a field ended by LF", "LF then CRLF"],
)
def test_a_bare_lf_line_end_in_a_head_is_refused(data: bytes) -> None:
    """A line of the head must end in CRLF: a front end reading LF otherwise disagrees."""
    assert refusal(data).status == 400


def test_by_name_reads_like_tornados_headers() -> None:
    """by_name holds what HTTPHeaders.get answers, under lower-case names: repeats comma-joined."""
    from tornado.httputil import HTTPHeaders

    data = (
        b"GET /a HTTP/1.1\r\nHost: h\r\n"
        b"X-Forwarded-For: 1.1.1.1\r\nx-forwarded-for: 2.2.2.2\r\n\r\n"
    )
    [head, _] = events(data)
    assert isinstance(head, RequestHead)
    tornado_headers = HTTPHeaders()
    for name, value in head.fields:
        tornado_headers.add(name, value)
    for name in ("host", "x-forwarded-for", "origin"):
        assert head.by_name.get(name) == tornado_headers.get(name)
    assert sorted(head.by_name) == ["host", "x-forwarded-for"]
    assert head.field("X-FORWARDED-FOR") == "1.1.1.1,2.2.2.2"


def test_a_raw_byte_above_ascii_in_the_target_is_refused_and_its_encoding_read() -> None:
    """RFC 9112 allows no raw non-ASCII target (400); the percent-encoded form is read."""
    assert refusal("GET /café HTTP/1.1\r\nHost: h\r\n\r\n".encode()).status == 400
    [head, _] = events(b"GET /caf%C3%A9 HTTP/1.1\r\nHost: h\r\n\r\n")
    assert isinstance(head, RequestHead)
    assert head.target == "/caf%C3%A9"


def test_pipelined_requests_wait_unparsed_behind_the_one_served() -> None:
    """Reading one request of many pipelined leaves the rest as bytes, not parsed heads."""
    one = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab"
    reader = RequestReader()
    reader.feed(one * 5000)
    assert isinstance(reader.next(), RequestHead)
    assert reader.next() == b"ab"
    assert reader.next() is END
    # All but the first request are still buffered bytes (a parsed head is
    # not counted): the parser read no further than asked.
    assert reader.buffered == len(one) * 4999


def test_keep_alive_follows_the_version_and_connection_field() -> None:
    """HTTP/1.1 lives on unless told to close; HTTP/1.0 only when asked."""

    def head_of(data: bytes) -> RequestHead:
        head = events(data)[0]
        assert isinstance(head, RequestHead)
        return head

    assert not head_of(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n").keep_alive
    assert not head_of(b"GET / HTTP/1.0\r\n\r\n").keep_alive
    assert head_of(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive
    upgrade = head_of(
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
        b"Connection: keep-alive, Upgrade\r\n\r\n"
    )
    assert upgrade.upgrade
    expect = head_of(
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n"
    )
    assert expect.expect_continue


def test_what_follows_a_handshake_is_handed_over_whole() -> None:
    """After an upgrade's head, take_rest() returns the bytes that came with it."""
    reader = RequestReader()
    reader.feed(
        b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x80"
    )
    assert isinstance(reader.next(), RequestHead)
    assert reader.next() is END
    assert reader.take_rest() == b"\x81\x80"
    assert reader.next() is None


@given(st.lists(st.integers(min_value=0, max_value=400), max_size=12))
def test_any_split_of_the_bytes_gives_the_same_requests(pieces: list[int]) -> None:
    """Bytes arriving in any pieces give the same heads, bodies and ENDs."""
    data = (
        b"\r\nPOST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world"
        b"POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: 1\r\n\r\n"
        b"GET /c HTTP/1.0\r\n\r\n"
    )
    assert normalized(events(data, pieces)) == normalized(events(data))


# --- Refusing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (
            b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            400,
        ),
        (b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n", 400),
        (b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: \xd9\xa3\r\n\r\n", 400),
        (b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n", 400),
        (b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 501),
        (
            b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
            501,
        ),
        (b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\rInjected: 2\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", 400),
        (b"GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400),
        (b"GET /a HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /a HTTP/1.1 extra\r\nHost: x\r\n\r\n", 400),
        (b"G\xc3T /a HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\r\nHost: x\r\n: empty name\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\r\nHost: a,b\r\n\r\n", 400),
        (b"GET /a HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
        (b"GET /a HTTP/1.0\r\nHost: a@b\r\n\r\n", 400),
        (b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\xa0\r\n\r\n", 501),
        (b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \x85chunked\r\n\r\n", 501),
        (b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \xa0chunked\r\n\r\n", 501),
        (b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"GET /a HTTP/0.9\r\nHost: x\r\n\r\n", 505),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: a\r\nConnection: upgrade\r\n"
            b"Content-Length: 3\r\n\r\nabc",
            400,
        ),
    ],
    ids=[
        "CL and TE",
        "two CL",
        "negative CL",
        "non-ASCII digits",
        "space before colon",
        "TE list",
        "two TE",
        "TE in 1.0",
        "bare CR",
        "folding",
        "NUL in target",
        "no Host",
        "two Hosts",
        "HTTP/2",
        "junk after version",
        "non-token method",
        "empty field name",
        "space in Host",
        "comma in Host",
        "slash in Host",
        "at sign in Host (1.0)",
        "TE chunked then NBSP",
        "TE NEL then chunked",
        "TE NBSP then chunked",
        "TE gzip, chunked",
        "HTTP/0.9",
        "upgrade with a body",
    ],
)
def test_ambiguous_or_malformed_heads_are_refused(data: bytes, status: int) -> None:
    """Each way two parsers could disagree is refused, with the status to answer."""
    assert refusal(data).status == status


@pytest.mark.parametrize(
    "body",
    [
        b"zz\r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloXX0\r\n\r\n",
        b"5\rhello\r\n0\r\n\r\n",
        b"3\nabc\r\n0\r\n\r\n",
        b'3;ext="a\nb"\r\nabc\r\n0\r\n\r\n',
        b"3\r\nabc\n0\r\n\r\n",
    ],
    ids=[
        "bad size",
        "no CRLF after data",
        "bare CR in size line",
        "bare LF after size",
        "LF in a quoted extension",
        "bare LF after data",
    ],
)
def test_malformed_chunked_bodies_are_refused(body: bytes) -> None:
    """A chunked body must frame every chunk exactly."""
    head = b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert refusal(head + body).status == 400


def test_a_head_over_the_limit_is_431_even_before_it_ends() -> None:
    """A head that grows past MAX_HEAD is refused without waiting for its end."""
    data = b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * MAX_HEAD
    assert refusal(data).status == 431


def test_too_many_fields_is_431() -> None:
    """More than MAX_FIELDS header fields is refused."""
    fields = b"".join(b"X-%d: v\r\n" % n for n in range(MAX_FIELDS + 1))
    assert refusal(b"GET / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n").status == 431


def test_an_endless_request_line_is_414() -> None:
    """A request line that never ends within the limit is a 414."""
    assert refusal(b"GET /" + b"a" * 10000).status == 414


def test_a_head_trickling_in_byte_by_byte_is_read() -> None:
    """One byte per read (slowloris-style) still yields the request."""
    data = b"GET /slow HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 2000 + b"\r\n\r\n"
    out = events(data, list(range(len(data))))
    assert normalized(out) == [("GET", "/slow"), END]
