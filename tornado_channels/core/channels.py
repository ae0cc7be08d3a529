"""Channel names: parsing and validation of URL paths (pure, no I/O).

A channel is named by a URL path without its leading slash: ``/users/1`` is
channel ``users/1``.  A path ending in ``/`` names a *subtree*: every channel
strictly below it (``/users/`` reaches ``users/1`` and ``users/1/a`` but not
``users``; ``/`` reaches every channel).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

#: Longest channel name, in bytes of its percent-decoded UTF-8 form.
MAX_NAME_BYTES = 255
#: The first segment of the server's own endpoints (``/_/health``): never a channel.
RESERVED = "_"

# C0 controls, DEL and C1 controls: Unicode category Cc.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")


class InvalidChannel(ValueError):
    """A path or name that breaks the channel naming rules; ``str()`` says which."""


@dataclass(frozen=True, slots=True)
class Channel:
    """One channel, e.g. ``users/1``."""

    name: str

    def ancestors(self) -> tuple[str, ...]:
        """Prefixes of the subtrees that contain this channel, root (``""``) first.

        ``users/1/a`` lies in the subtrees ``""``, ``users`` and ``users/1``.
        """
        segments = self.name.split("/")
        return tuple("/".join(segments[:depth]) for depth in range(len(segments)))

    @property
    def is_subtree(self) -> bool:
        """False: one channel (a :class:`Subtree` is many)."""
        return False

    def overlaps(self, prefix: str) -> bool:
        """Whether this channel lies at or below ``prefix``, by whole segments.

        ``prefix`` is spelled as for ``--public``: ``private`` and
        ``private/`` both mean ``private`` and every channel below it (never
        ``privateer``); ``/`` means every channel.  For one channel this is
        :meth:`within` too; both exist so that a hook asks the same question
        of a channel and of a :class:`Subtree`.
        """
        return covers(prefix, self.name)

    def within(self, prefix: str) -> bool:
        """Whether this channel lies at or below ``prefix`` (see :meth:`overlaps`)."""
        return covers(prefix, self.name)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Subtree:
    """Every channel strictly below ``prefix``; the empty prefix is the root."""

    prefix: str

    def contains(self, channel: Channel) -> bool:
        """Whether ``channel`` lies strictly below this subtree."""
        if not self.prefix:
            return True
        return channel.name.startswith(self.prefix + "/")

    @property
    def is_subtree(self) -> bool:
        """True: every channel below a prefix (a :class:`Channel` is one)."""
        return True

    def overlaps(self, prefix: str) -> bool:
        """Whether a subscriber of this subtree hears *any* channel at or below ``prefix``.

        What a hook refusing a part of the tree asks: ``/`` and ``users/``
        overlap ``users/1/`` (they hear ``users/1/a``), and so does
        ``users/1/a/`` (everything it hears is below ``users/1``); ``news/``
        does not.  ``prefix`` is spelled as for ``--public`` (see
        :meth:`Channel.overlaps`).
        """
        # Either the subtree lies at or below the prefix (it hears only such
        # channels), or the prefix lies below the subtree (it hears that part).
        return covers(prefix, self.prefix) or covers(self.prefix, prefix.strip("/"))

    def within(self, prefix: str) -> bool:
        """Whether *every* channel a subscriber of this subtree hears lies at or below ``prefix``.

        What a hook allowing only a part of the tree asks: ``users/1/`` is
        within ``users/`` (and ``users``), ``users/`` within ``users/``;
        ``/`` is within ``/`` only.  ``prefix`` is spelled as for ``--public``.
        """
        return covers(prefix, self.prefix)

    def __str__(self) -> str:
        return self.prefix + "/" if self.prefix else "/"


#: What a publish is addressed to.
Target = Channel | Subtree


def covers(prefix: str, name: str) -> bool:
    """Whether ``prefix`` names ``name`` or one of the channels above it, by whole segments.

    Leading and trailing ``/`` are ignored (``users/`` is ``users``), and an
    empty prefix (``/``) covers every name.
    """
    prefix = prefix.strip("/")
    return not prefix or name == prefix or name.startswith(prefix + "/")


def validate_name(name: str) -> str:
    """Return ``name`` if it is a valid (decoded) channel name, else raise.

    Rules: at least one segment; segments separated by ``/`` are non-empty and
    are not ``.`` or ``..``; no control characters; at most
    :data:`MAX_NAME_BYTES` bytes of UTF-8.
    """
    if not name:
        raise InvalidChannel("channel name is empty")
    match = _CONTROL.search(name)
    if match:
        raise InvalidChannel(f"channel name contains control character U+{ord(match.group()):04X}")
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        # Lone surrogates cannot come from a decoded URL, but may from library callers.
        raise InvalidChannel("channel name is not valid Unicode") from None
    if size > MAX_NAME_BYTES:
        raise InvalidChannel(f"channel name is {size} bytes; the maximum is {MAX_NAME_BYTES}")
    for segment in name.split("/"):
        if not segment:
            raise InvalidChannel("channel name has an empty segment ('//' or a leading '/')")
        if segment in (".", ".."):
            raise InvalidChannel(f"channel name has a '{segment}' segment")
    return name


def _decode_segment(raw: str) -> str:
    # Characters as UTF-8, percent-escapes as the bytes they name; bytes that
    # came off the wire undecodable are surrogate escapes (see path_text) and
    # turn back into those bytes, so they fail below like their %XX form.
    if raw.isascii() and "%" not in raw:
        return raw  # Nothing to decode (most names).
    try:
        data = unquote_to_bytes(raw.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        # A lone surrogate no UTF-8 can carry (from a library caller or JSON).
        raise InvalidChannel("channel name is not valid Unicode") from None
    if b"/" in data:
        # An encoded slash would make two different paths name one channel.
        raise InvalidChannel("channel name contains an encoded '/' (%2F)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidChannel("channel name is not valid UTF-8 once percent-decoded") from None


# Cached: the same few channels are published to again and again (a batch of
# a thousand messages may name a handful), and parsing one is most of the
# per-message cost of a batch.  Refusals raise, and are never cached.
@functools.lru_cache(maxsize=4096)
def parse_target(path: str) -> Target:
    """Parse a percent-encoded path into the :class:`Channel` or :class:`Subtree` it names.

    ``path`` is relative to the mount point, without its leading ``/``:
    ``"users/1"`` is ``Channel("users/1")``, ``"users/"`` is ``Subtree("users")``
    and ``""`` is the root ``Subtree("")``.
    """
    if path == "":
        return Subtree("")
    subtree = path.endswith("/")
    raw = path[:-1] if subtree else path
    name = "/".join(_decode_segment(segment) for segment in raw.split("/"))
    validate_name(name)
    if name == RESERVED or name.startswith(RESERVED + "/"):
        # Checked once decoded, so "%5F/x" is refused like "_/x" on every edge.
        raise InvalidChannel(f"'{name}' is reserved for the server's own endpoints (under '_/')")
    return Subtree(name) if subtree else Channel(name)


def path_below(prefix: str, path: str) -> str | None:
    """What follows a mount ``prefix`` (ending in ``/``) in a request ``path``; None outside it.

    Still percent-encoded.  The mount point without its slash (``/live``
    for ``/live/``) is the mount point itself: ``""``.
    """
    if path.startswith(prefix):
        return path[len(prefix) :]
    if path and path == prefix.rstrip("/"):
        return ""
    return None


def is_reserved_path(rest: str) -> bool:
    """Whether a path below a mount point (still encoded) is in the server's own ``_/``."""
    return rest == RESERVED or rest.startswith(RESERVED + "/")


def path_text(raw: str) -> str:
    """A request path as Tornado decodes it (Latin-1, one character per byte) read as UTF-8.

    Raw UTF-8 in a URL (``curl host/café``) then names the same channel as
    its percent-encoded form (``/caf%C3%A9``).  Bytes that are not UTF-8 are
    kept as surrogate escapes, which :func:`parse_target` refuses, as it
    refuses their percent-encoded form.
    """
    if raw.isascii():
        return raw
    return raw.encode("latin-1").decode("utf-8", "surrogateescape")


def parse_channel(path: str) -> Channel:
    """Like :func:`parse_target`, but only a single channel is acceptable."""
    target = parse_target(path)
    if isinstance(target, Subtree):
        raise InvalidChannel(
            f"'{target}' ends with '/' and names a subtree: subtrees can be "
            "published to, not subscribed to"
        )
    return target
