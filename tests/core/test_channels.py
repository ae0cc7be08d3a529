"""Channel names: parsing percent-encoded paths into channels and subtrees."""

from __future__ import annotations

import itertools
from urllib.parse import quote

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tornado_channels.core.channels import (
    MAX_NAME_BYTES,
    Channel,
    InvalidChannel,
    Subtree,
    covers,
    is_reserved_path,
    parse_channel,
    parse_target,
    path_below,
    path_text,
    validate_name,
)

# --- Accepted paths ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("users/1", Channel("users/1")),
        ("users", Channel("users")),
        ("users/", Subtree("users")),
        ("", Subtree("")),
        ("a/b/c/d/e/f/g", Channel("a/b/c/d/e/f/g")),
        ("a/b/c/", Subtree("a/b/c")),
        ("caf%C3%A9", Channel("café")),
        ("café", Channel("café")),
        ("%E6%97%A5%E6%9C%AC/%F0%9F%98%80", Channel("日本/😀")),
        ("Users", Channel("Users")),
        ("room/*", Channel("room/*")),
        ("a?b/[c]", Channel("a?b/[c]")),
        ("100%25", Channel("100%")),
        ("...", Channel("...")),
        (".hidden/a.", Channel(".hidden/a.")),
        ("%61", Channel("a")),
    ],
)
def test_valid_path_parses_to_its_target(path, target):
    """A valid path parses to the channel or subtree it names, percent-decoded."""
    assert parse_target(path) == target


def test_names_are_case_sensitive():
    """Names differing only in case are different channels."""
    assert parse_target("Users") != parse_target("users")


def test_root_is_an_empty_subtree():
    """The empty path is the root subtree, which prints as '/'."""
    root = parse_target("")
    assert isinstance(root, Subtree)
    assert (root.prefix, str(root)) == ("", "/")


def test_name_of_exactly_the_maximum_length_is_accepted():
    """A name of exactly MAX_NAME_BYTES decoded bytes is a valid channel."""
    assert parse_target("a" * MAX_NAME_BYTES) == Channel("a" * MAX_NAME_BYTES)


def test_multibyte_name_at_the_maximum_length_is_accepted():
    """The limit counts UTF-8 bytes, so 127 two-byte letters plus one ASCII fit."""
    name = "é" * 127 + "x"
    assert len(name.encode()) == MAX_NAME_BYTES
    assert parse_target(quote(name, safe="")) == Channel(name)


def test_max_name_bytes_is_255():
    """Channel names are bounded at 255 bytes."""
    assert MAX_NAME_BYTES == 255


# --- Rejected paths ---------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "keyword"),
    [
        ("a//b", "empty segment"),
        ("/a", "empty segment"),
        ("a/b//", "empty segment"),
        ("/", "empty"),
        (".", "'.' segment"),
        ("..", "'..' segment"),
        ("a/../b", "'..' segment"),
        ("a/./b", "'.' segment"),
        ("%2e%2e", "'..' segment"),
        ("a/%2E/b", "'.' segment"),
        (".%2e/", "'..' segment"),
        ("a%00b", "control character U+0000"),
        ("a%0d%0ab", "control character U+000D"),
        ("a%09b", "control character U+0009"),
        ("a\tb", "control character U+0009"),
        ("a%7fb", "control character U+007F"),
        ("a%C2%85b", "control character U+0085"),
        ("a%2Fb", "encoded '/'"),
        ("a%2fb", "encoded '/'"),
        ("%ff", "UTF-8"),
        ("a/%C3", "UTF-8"),
        ("a" * 256, "256 bytes"),
        ("%C3%A9" * 128, "256 bytes"),
        ("a/" * 200, "bytes"),
    ],
)
def test_invalid_path_is_rejected_with_a_reason(path, keyword):
    """An invalid path raises InvalidChannel whose message names the problem."""
    with pytest.raises(InvalidChannel) as excinfo:
        parse_target(path)
    assert keyword in str(excinfo.value)


def test_invalid_channel_is_a_value_error():
    """InvalidChannel is a ValueError, so generic callers can catch it."""
    assert issubclass(InvalidChannel, ValueError)


@pytest.mark.parametrize("path", ["users/", ""])
def test_parse_channel_rejects_subtrees(path):
    """parse_channel refuses a subtree or the root, saying it names a subtree."""
    with pytest.raises(InvalidChannel, match="subtree"):
        parse_channel(path)


def test_parse_channel_accepts_a_channel():
    """parse_channel returns the single channel a path names."""
    assert parse_channel("users/1") == Channel("users/1")


@pytest.mark.parametrize(
    ("name", "keyword"),
    [
        ("", "empty"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("..", "'..' segment"),
        ("a\nb", "control character"),
        ("\ud800", "not valid Unicode"),
        ("x" * 256, "bytes"),
    ],
)
def test_validate_name_rejects_bad_decoded_names(name, keyword):
    """validate_name applies the rules to an already-decoded name."""
    with pytest.raises(InvalidChannel) as excinfo:
        validate_name(name)
    assert keyword in str(excinfo.value)


def test_validate_name_returns_a_valid_name():
    """validate_name returns a valid name unchanged."""
    assert validate_name("users/1") == "users/1"


# --- Channel and Subtree ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ancestors"),
    [
        ("a/b/c", ("", "a", "a/b")),
        ("a", ("",)),
        ("users/1/a", ("", "users", "users/1")),
    ],
)
def test_ancestors_list_containing_subtrees_root_first(name, ancestors):
    """A channel's ancestors are the subtree prefixes above it, root first."""
    assert Channel(name).ancestors() == ancestors


@pytest.mark.parametrize(
    ("prefix", "name", "contained"),
    [
        ("users", "users/1", True),
        ("users", "users/1/a", True),
        ("users", "users", False),
        ("users", "usersX/1", False),
        ("users", "users2", False),
        ("users/1", "users/1", False),
        ("users/1", "users/10", False),
        ("a", "b/a", False),
        ("", "users", True),
        ("", "users/1/a", True),
    ],
)
def test_subtree_contains_strictly_below_only(prefix, name, contained):
    """A subtree contains the channels strictly below its prefix, not the prefix."""
    assert Subtree(prefix).contains(Channel(name)) is contained


def test_str_gives_the_path_form():
    """A channel prints as its name, a subtree as its prefix with a trailing slash."""
    assert (str(Channel("a/b")), str(Subtree("a"))) == ("a/b", "a/")


# --- Properties -------------------------------------------------------------

segments = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="/"),
    min_size=1,
    max_size=12,
).filter(lambda s: s not in (".", ".."))
# The server's own namespace (a first segment "_") is never a channel name.
names = st.lists(segments, min_size=1, max_size=6).filter(lambda s: s[0] != "_").map("/".join)


def encode(name: str) -> str:
    """Percent-encode a channel name segment by segment, as a client would."""
    return "/".join(quote(segment, safe="") for segment in name.split("/"))


def fits(name: str) -> bool:
    """Whether ``name`` is within the length limit."""
    return len(name.encode("utf-8")) <= MAX_NAME_BYTES


@settings(deadline=None)
@given(names)
def test_encoded_valid_name_parses_back_to_itself(name):
    """Any valid name, percent-encoded, parses back to exactly that name, idempotently."""
    assume(fits(name))
    parsed = parse_channel(encode(name))
    assert parsed == Channel(name)
    assert parse_channel(encode(parsed.name)) == parsed


@settings(deadline=None)
@given(names)
def test_valid_name_over_the_limit_is_rejected(name):
    """A valid-looking name is rejected exactly when it exceeds the byte limit."""
    if fits(name):
        assert parse_target(encode(name)) == Channel(name)
    else:
        with pytest.raises(InvalidChannel, match="bytes"):
            parse_target(encode(name))


@settings(deadline=None)
@given(names, names)
def test_parsed_subtree_contains_channels_below_it(prefix, rest):
    """A parsed subtree P contains every channel P/rest."""
    channel = prefix + "/" + rest
    assume(fits(channel))
    subtree = parse_target(encode(prefix) + "/")
    assert subtree == Subtree(prefix)
    assert subtree.contains(parse_channel(encode(channel)))


@settings(deadline=None)
@given(names)
def test_channel_lies_in_each_ancestor_and_not_itself(name):
    """A channel is contained in every ancestor subtree and not in its own."""
    channel = Channel(name)
    assert all(Subtree(prefix).contains(channel) for prefix in channel.ancestors())
    assert not Subtree(name).contains(channel)


path_pieces = st.sampled_from(
    [
        "a",
        "/",
        ".",
        "%",
        "%2e",
        "%2E",
        "%2f",
        "%00",
        "%0a",
        "%7f",
        "%c2",
        "%85",
        "%ff",
        "%C3%A9",
        "é",
        "\x00",
        "\t",
        "\x85",
        "2",
        "e",
        "f",
    ]
)
messy_paths = st.one_of(st.text(), st.lists(path_pieces, max_size=20).map("".join))


@settings(deadline=None)
@given(messy_paths)
def test_accepted_names_never_leak_forbidden_content(path):
    """Whatever path is accepted yields a name without controls or bad segments."""
    try:
        target = parse_target(path)
    except InvalidChannel:
        return
    name = target.name if isinstance(target, Channel) else target.prefix
    if isinstance(target, Subtree) and name == "":
        assert path == ""
        return
    assert all(not ("\x00" <= ch <= "\x1f" or "\x7f" <= ch <= "\x9f") for ch in name)
    assert all(segment not in ("", ".", "..") for segment in name.split("/"))
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES


controls = st.characters(categories=("Cc",))


@settings(deadline=None)
@given(st.text(), controls, st.text())
def test_any_control_character_is_rejected(before, control, after):
    """Any path or name containing a control character is rejected."""
    text = before + control + after
    with pytest.raises(InvalidChannel):
        parse_target(text)
    with pytest.raises(InvalidChannel):
        parse_target(quote(text, safe="/"))
    with pytest.raises(InvalidChannel):
        validate_name(text)


@pytest.mark.parametrize(
    ("prefix", "name", "expected"),
    [
        ("users", "users", True),
        ("users/", "users", True),
        ("/users/", "users/1", True),
        ("users", "users/1/a", True),
        ("users/", "userspace", False),
        ("users", "userspace/1", False),
        ("users/1", "users/10", False),
        ("/", "anything/at/all", True),
        ("", "x", True),
    ],
)
def test_covers_is_by_whole_segments_with_or_without_a_slash(
    prefix: str, name: str, expected: bool
) -> None:
    """A prefix covers its own name and names below it, however its slashes are written."""
    assert covers(prefix, name) is expected


@pytest.mark.parametrize("path", ["_", "_/x", "%5F/x", "%5f", "_/", "%5F/", "_/a/b"])
def test_the_reserved_namespace_is_refused_once_decoded(path: str) -> None:
    """``_`` as a first segment is the server's, however it is spelled."""
    with pytest.raises(InvalidChannel, match="reserved"):
        parse_target(path)


@pytest.mark.parametrize("path", ["a/_", "__/x", "_a", "x/_/y"])
def test_underscores_elsewhere_are_ordinary(path: str) -> None:
    """Only a first segment of exactly ``_`` is reserved."""
    assert parse_target(path) == Channel(path)


def test_raw_utf8_off_the_wire_reads_like_its_percent_encoded_form() -> None:
    """Tornado's Latin-1 view of raw UTF-8 bytes names the same channel as %XX escapes."""
    wire = "café".encode().decode("latin-1")
    assert parse_target(path_text(wire)) == parse_target("caf%C3%A9") == Channel("café")


@pytest.mark.parametrize("raw", [b"a\xffb", b"caf\xc3", b"\xed\xa0\x80"])
def test_raw_bytes_that_are_not_utf8_are_refused_like_their_escapes(raw: bytes) -> None:
    """Invalid UTF-8 off the wire fails as its percent-encoded form does."""
    with pytest.raises(InvalidChannel, match="UTF-8"):
        parse_target(path_text(raw.decode("latin-1")))
    with pytest.raises(InvalidChannel, match="UTF-8"):
        parse_target("".join(f"%{byte:02X}" for byte in raw))


@pytest.mark.parametrize(
    ("prefix", "path", "rest"),
    [
        ("/", "/users/1", "users/1"),
        ("/", "/", ""),
        ("/live/", "/live/users/", "users/"),
        ("/live/", "/live", ""),
        ("/live/", "/livestock/1", None),
        ("/live/", "/other", None),
    ],
)
def test_path_below_a_mount_point(prefix: str, path: str, rest: str | None) -> None:
    """The part of a path below a mount point, the bare mount point as "", None outside it."""
    assert path_below(prefix, path) == rest


def test_the_reserved_namespace_below_a_mount_point_is_underscore_and_what_is_under_it() -> None:
    """'_' and '_/...' are the server's own; '_x', and '_' deeper down, are not."""
    assert is_reserved_path("_")
    assert is_reserved_path("_/publish")
    assert not is_reserved_path("_x")
    assert not is_reserved_path("users/_")


# --- What a target reaches: for hooks -----------------------------------------


def test_a_target_says_whether_it_is_a_subtree() -> None:
    """A channel is not a subtree; a subtree, the root included, is."""
    assert Channel("users/1").is_subtree is False
    assert Subtree("users").is_subtree is True
    assert Subtree("").is_subtree is True


@pytest.mark.parametrize(
    ("target", "prefix", "overlaps", "within"),
    [
        (Channel("private/x"), "private/", True, True),
        (Channel("private"), "private/", True, True),
        (Channel("privateer"), "private/", False, False),
        (Channel("public/x"), "private", False, False),
        (Subtree(""), "private/", True, False),
        (Subtree(""), "/", True, True),
        (Subtree("private"), "private/", True, True),
        (Subtree("private/x"), "private", True, True),
        (Subtree("users"), "users/1/", True, False),
        (Subtree("public"), "private/", False, False),
        (Subtree("privateer"), "private/", False, False),
        (Subtree("public/a"), "/public/", True, True),
    ],
)
def test_overlaps_and_within_say_what_a_target_reaches(
    target: Channel | Subtree, prefix: str, overlaps: bool, within: bool
) -> None:
    """overlaps: it hears some channel at or below the prefix; within: it hears only such."""
    assert target.overlaps(prefix) is overlaps
    assert target.within(prefix) is within


_SEGMENT = st.sampled_from(["a", "b", "ab"])
_NAME = st.lists(_SEGMENT, min_size=1, max_size=3).map("/".join)
# Every name of up to four segments from the same alphabet: a universe in which any
# subtree of up to three segments has channels on both sides of any such prefix.
_UNIVERSE = [
    "/".join(parts)
    for depth in range(1, 5)
    for parts in itertools.product(["a", "b", "ab"], repeat=depth)
]


@given(
    target=st.one_of(_NAME.map(Channel), st.one_of(st.just(""), _NAME).map(Subtree)),
    prefix=st.one_of(st.just("/"), _NAME, _NAME.map(lambda name: name + "/")),
)
@settings(max_examples=300)
def test_overlaps_and_within_agree_with_the_channels_a_target_hears(
    target: Channel | Subtree, prefix: str
) -> None:
    """Both agree with checking, channel by channel, what the target hears against the prefix."""
    heard = [
        name
        for name in _UNIVERSE
        if (
            Channel(name) == target
            if isinstance(target, Channel)
            else target.contains(Channel(name))
        )
    ]
    assert target.overlaps(prefix) == any(covers(prefix, name) for name in heard)
    assert target.within(prefix) == all(covers(prefix, name) for name in heard)
