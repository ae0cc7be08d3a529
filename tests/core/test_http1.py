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
        b"5 ;name=value\r\nhello\r\nA\r\n, world!!!\r\n0\r\nX-T: 1\r\n\r\n"
    )
    assert normalized(events(data)) == [("POST", "/a"), b"hello, world!!!", END]


def test_pipelined_requests_come_one_after_another() -> None:
    """Two requests in one read: head, body, END, head, END."""
    data = (
        b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx"
        b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    assert normalized(events(data)) == [("POST", "/a"), b"x", END, ("GET", "/b"), END]


def test_empty_lines_before_a_request_and_bare_lf_endings_are_accepted() -> None:
    """RFC 9112: leading empty lines are ignored; a bare LF may end a line."""
    out = events(b"\r\n\r\nGET /a HTTP/1.1\nHost: h\n\n")
    assert normalized(out) == [("GET", "/a"), END]


def test_a_head_ending_in_lf_crlf_ends_there_and_the_crlf_after_it_is_ignored() -> None:
    """A mixed ending (LF, then CRLF) ends the head before a later CRLFCRLF could."""
    data = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\n\r\nab\r\n\r\n"
    assert normalized(events(data)) == [("POST", "/a"), b"ab", END]


@pytest.mark.parametrize(
    "data",
    [
        b"POST /a?b=1 HTTP/1.1\r\nHost: h:80\r\nX-A:  1 \t\r\nx-a: 2\r\nContent-Length: 1\r\n\r\n",
        b"GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\nExpect: 100-continue\r\n\r\n",
        b"PUT /\xc3\xa9 HTTP/1.1\r\nHost: [::1]:8\r\nUpgrade: websocket\r\n"
        b"Connection: keep-alive, Upgrade\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
)
def test_a_head_reads_the_same_with_crlf_or_bare_lf_line_ends(data: bytes) -> None:
    """The one-pass reading of a CRLF head and the line-by-line one agree on every field."""
    [crlf] = [e for e in events(data) if isinstance(e, RequestHead)]
    [lf] = [e for e in events(data.replace(b"\r\n", b"\n")) if isinstance(e, RequestHead)]
    assert crlf == lf
    assert crlf.field("x-a") in (None, "1,2")


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


def test_raw_bytes_above_ascii_in_the_target_are_kept_as_latin1() -> None:
    """The target's bytes survive (as Latin-1 characters) to be read later as UTF-8."""
    [head, _] = events("GET /café HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    assert isinstance(head, RequestHead)
    assert head.target.encode("latin-1") == "/café".encode()


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
        b"GET /c HTTP/1.0\n\n"
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
    ],
)
def test_ambiguous_or_malformed_heads_are_refused(data: bytes, status: int) -> None:
    """Each way two parsers could disagree is refused, with the status to answer."""
    assert refusal(data).status == status


@pytest.mark.parametrize(
    "body",
    [b"zz\r\nhello\r\n0\r\n\r\n", b"5\r\nhelloXX0\r\n\r\n", b"5\rhello\r\n0\r\n\r\n"],
    ids=["bad size", "no CRLF after data", "bare CR in size line"],
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
