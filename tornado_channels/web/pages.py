"""The pages: a channel's live page, the home page, and a JSON 404 for everything else.

Handlers are thin, and take what they need through ``initialize`` from the
route table.  The pages run only the server's own script and style.
"""

from __future__ import annotations

from ..core.channels import Channel, InvalidChannel, Subtree, Target, parse_target
from .context import MountContext
from .errors import ApiError, JSONErrorsMixin, invalid_channel

# Pages run only our own script and style, and nothing can frame them.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class ChannelHandler(JSONErrorsMixin):
    """``GET /<channel>`` is the channel's live page (POSTs go to publishing.py)."""

    SUPPORTED_METHODS = ("GET", "HEAD")
    # A channel's path also takes POST (the publishing edge) and upgrades.
    ALLOW = ("GET", "HEAD", "POST")

    def initialize(self, mount: MountContext) -> None:
        """Take what the mount point's routes share (see context.py)."""
        self.mount = mount

    def prepare(self) -> None:
        """Parse the channel from the path."""
        try:
            self.target: Target = parse_target(self.path_kwargs["path"])
        except InvalidChannel as exc:
            raise invalid_channel(exc) from None

    def get(self, path: str) -> None:
        """The channel's live page, or the home page for the root."""
        target = self.target
        self.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Referrer-Policy", "same-origin")
        namespace = {"static": self.mount.config.static_prefix, "home": self.mount.config.prefix}
        if isinstance(target, Channel) or target.prefix:
            # A token the page carries is checked as its connection will check it
            # (401, 403). Without one the page still loads (it shows nothing but
            # the name in its URL) and says the channel needs a token, unless it
            # fetches one itself (?token_url=).
            needs_token = self.mount.guard.enabled and not self.mount.guard.is_public(target)
            if self.get_query_argument("token", None) is not None:
                self.mount.guard.subscriber(self.request, target)
                needs_token = False
            page = self.mount.templates.load("channel.html").generate(
                # A subtree's page shows everything below it, labelled by channel.
                channel=str(target),
                subtree=isinstance(target, Subtree),
                presence_url=f"{self.mount.config.prefix}_/presence/{self.path_kwargs['path']}",
                publish_url=self._url_without_query(),
                needs_token=needs_token,
                # Where only a publish key lets anyone publish, a browser (which
                # cannot send it) gets no send box that would only close its stream.
                can_send=self.mount.guard.enabled or self.mount.config.publish_key is None,
                **namespace,
            )
        else:
            channels = None
            if self.mount.config.list_channels:
                by_size = sorted(
                    self.mount.node.hub.channels().items(), key=lambda item: (-item[1], item[0])
                )
                channels = by_size[:50]
            page = self.mount.templates.load("home.html").generate(
                channels=channels, base_url=self._url_without_query(), **namespace
            )
        self.finish(page)

    def head(self, path: str) -> None:
        """What GET answers, without the body."""
        self.get(path)

    def _url_without_query(self) -> str:
        # For the curl examples on the pages: a page's own ?query is not the channel's.
        return f"{self.request.protocol}://{self.request.host}{self.request.path}"


class NotFoundHandler(JSONErrorsMixin):
    """Any path no rule matched (e.g. an unknown ``/_/`` endpoint): a JSON 404."""

    def prepare(self) -> None:
        """Refuse: nothing lives here."""
        raise ApiError(404, "not_found", f"no endpoint at {self.request.path}")
