"""Grants: which channels a token lets its bearer subscribe or publish to (pure).

A grant is written like a channel's URL path: a channel name grants that
channel only; a name ending in ``/`` grants every channel strictly below it
(as ``POST /users/`` reaches them), and ``/`` grants everything.  Grants are
decoded as the URL is (percent-escapes, raw UTF-8) and compared by whole
segments: ``users/4`` and ``users/4/`` never grant ``users/42``, and
``users/42/`` does not grant ``users/42`` itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .channels import Channel, InvalidChannel, Target, parse_target


class InvalidGrant(ValueError):
    """A grant that is not a channel name or a subtree."""


@dataclass(frozen=True, slots=True)
class Grants:
    """The channels and subtrees of one grant list."""

    targets: tuple[Target, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Grants:
        """Grants from their written form; raise :class:`InvalidGrant` naming a bad one."""
        targets = []
        for entry in entries:
            path = entry[1:] if entry.startswith("/") and entry != "/" else entry
            try:
                targets.append(parse_target("" if path == "/" else path))
            except InvalidChannel as exc:
                raise InvalidGrant(f"grant {entry[:80]!r}: {exc}") from None
        return cls(tuple(targets))

    def allows(self, target: Target) -> bool:
        """Whether these grants cover ``target``: a channel, or a subtree (to publish or watch).

        A subtree grant covers the channels strictly below it, and the
        subtrees at or below it (``users/`` lets a POST to ``users/`` and
        ``users/2/`` through).
        """
        for grant in self.targets:
            if isinstance(grant, Channel):
                if target == grant:
                    return True
            elif isinstance(target, Channel):
                if grant.contains(target):
                    return True
            elif target.prefix == grant.prefix or (
                target.prefix and grant.contains(Channel(target.prefix))
            ):
                return True
        return False


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says about its bearer."""

    #: The user id (the token's ``sub``), for hooks and presence; None when absent.
    subject: str | None
    subscribe: Grants
    publish: Grants
    #: When the token stops being valid (its ``exp``, epoch seconds), or None.
    expires_at: float | None = None
