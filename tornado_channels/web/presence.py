"""``GET /_/presence/<channel>`` and ``GET /_/presence/<prefix>/``: who is where, deployment-wide.

A channel's answer counts its subscribers on every process sharing the
broker and lists their users (tokens' ``sub``); a subtree's adds up
everything at and below it and lists one page of it per channel (and per
subtree with subscribers of its own), continued with ``?cursor=``.

Who may ask: a backend with the publish key, or a client whose token grants
subscribing to that channel or subtree (or anyone, for a ``--public`` one).
Otherwise a mount point that has a publish key or tokens refuses: 401
without credentials, 403 for a wrong key or a token that does not grant it;
one that has neither answers anyone, as it lets anyone publish.  Except
with the publish key, the application's subscribe hooks are asked too
(``authorize_subscribe``, ``authorize_subtree``): who may not subscribe
somewhere may not count who did.
"""

from __future__ import annotations

from ..brokers.base import BrokerUnavailable
from ..core.channels import Channel, InvalidChannel, Target, parse_target
from ..core.presence import DEFAULT_LIMIT, MAX_LIMIT
from .context import MountContext
from .errors import ApiError, JSONErrorsMixin, broker_unavailable, invalid_channel
from .subscribing import ask_hooks
from .tokens import bearer_of, carries_key, token_of, wrong_key

#: The longest cursor taken.  A cursor is a name from the page before (at most
#: 255 bytes, see core/channels.py, and a trailing "/"), so twice that is never
#: too short; and a request carrying the longest, percent-encoded, still fits
#: the 8 KiB request line, so a valid cursor is never answered 414.
MAX_CURSOR = 512


class PresenceHandler(JSONErrorsMixin):
    """Answers presence queries for one mount point."""

    def initialize(self, mount: MountContext) -> None:
        """Take what the mount point's routes share (see context.py)."""
        self.mount = mount

    async def get(self, path: str) -> None:
        """Answer the presence of the channel or subtree at ``path``."""
        try:
            target = parse_target(path)
        except InvalidChannel as exc:
            raise invalid_channel(exc) from None
        self.check_access(target)
        if not carries_key(self.request.headers, self.mount.config.publish_key):
            await ask_hooks(self.mount.hooks, self.request, target)
        self.set_header("Cache-Control", "no-store")
        presence = self.mount.node.presence
        try:
            if isinstance(target, Channel):
                answer = (await presence.channel(target)).as_json()
            else:
                limit, cursor = self.page_arguments()
                answer = (await presence.below(target, cursor, limit)).as_json()
        except BrokerUnavailable as exc:
            raise broker_unavailable(exc) from None
        self.finish(answer)

    def page_arguments(self) -> tuple[int, str | None]:
        """``?limit=`` (1 to :data:`MAX_LIMIT`) and ``?cursor=``, or the 400 that says why not."""
        raw = self.get_query_argument("limit", None)
        limit = DEFAULT_LIMIT
        if raw is not None:
            # isascii: str.isdigit() is also true of digits int() cannot read ("²").
            if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_LIMIT:
                raise ApiError(
                    400, "invalid_limit", f"limit must be a whole number from 1 to {MAX_LIMIT}"
                )
            limit = int(raw)
        # Unstripped: a cursor is a channel name, which may begin or end with a space.
        cursor = self.get_query_argument("cursor", None, strip=False)
        if cursor is not None and (not cursor or len(cursor) > MAX_CURSOR):
            raise ApiError(400, "invalid_cursor", "cursor must be the 'cursor' of the page before")
        return limit, cursor

    def check_access(self, target: Target) -> None:
        """Let in the publish key or a token granting ``target``; refuse others like publishing."""
        key = self.mount.config.publish_key
        if carries_key(self.request.headers, key):
            return
        bearer = bearer_of(self.request.headers)
        if wrong_key(bearer, key, self.mount.guard):
            raise ApiError(403, "forbidden", "wrong publish key")
        if self.mount.guard.enabled and token_of(self.request) is not None:
            # Raises the 401 that says why a token is refused; a valid one must grant it.
            self.mount.guard.subscriber(self.request, target)
            return
        if self.mount.guard.enabled and self.mount.guard.is_public(target):
            # Anyone may subscribe there, so anyone may see who did.
            return
        if key is None and not self.mount.guard.enabled:
            return
        if self.mount.hooks.authenticates:
            return  # The hooks decide who has no credentials (--auth-url): asked next.
        raise ApiError(
            401,
            "unauthorized",
            f"presence of '{target}' needs the publish key or a token granting it "
            "(Authorization: Bearer)",
            {"WWW-Authenticate": 'Bearer realm="presence"'},
        )
