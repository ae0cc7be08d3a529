"""Settings shared by the channel handlers of one mount point."""

from __future__ import annotations

from dataclasses import dataclass

from ..core.channels import covers

#: Default maximum size of a published message (POST body or WebSocket message).
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
#: Default largest batch publish body (``POST /_/publish``).
DEFAULT_MAX_BATCH_BYTES = 8 << 20


@dataclass(frozen=True)
class ChannelConfig:
    """What the handlers of one mount point need to know.

    :param prefix: URL path the channels are mounted under, with trailing ``/``.
    :param max_message_size: largest POST body (413 beyond) or WebSocket
        message (closed with 1009 beyond), in bytes.
    :param ping_interval: seconds between server WebSocket pings (0: none).
    :param ping_timeout: seconds without a pong before a peer is dropped.
    :param list_channels: whether the home page lists the channels that have
        subscribers.  Off by default: channel names can be private.
    :param publish_key: when set, a POST must carry ``Authorization: Bearer <key>``.
    :param read_only: channel prefixes WebSocket clients may not publish to
        (``"/"``: every channel); POSTs are unaffected.
    :param trusted_origins: origins (``https://app.example``) allowed to open
        WebSockets and POST from another site.
    :param max_connections: WebSocket connections this process accepts (0: no cap).
    :param client_rate: frames per second (messages, fragments, pings) one
        WebSocket client may send on average (0: no limit); past
        ``client_burst`` it is closed with 1008.
    :param sse_heartbeat: seconds between heartbeats on an idle event stream
        (below any proxy's read timeout).
    :param max_batch_messages: most messages in one ``POST /_/publish``.
    :param max_batch_bytes: largest ``POST /_/publish`` body, in bytes.
    """

    prefix: str = "/"
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    list_channels: bool = False
    publish_key: str | None = None
    read_only: tuple[str, ...] = ()
    trusted_origins: tuple[str, ...] = ()
    max_connections: int = 0
    client_rate: float = 0.0
    client_burst: float = 100.0
    sse_heartbeat: float = 15.0
    max_batch_messages: int = 1000
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES

    def __post_init__(self) -> None:
        if not self.prefix.startswith("/") or not self.prefix.endswith("/"):
            raise ValueError(f"prefix must start and end with '/': {self.prefix!r}")
        if self.max_message_size < 1:
            raise ValueError("max_message_size must be positive")
        if self.max_batch_messages < 1 or self.max_batch_bytes < 1:
            raise ValueError("max_batch_messages and max_batch_bytes must be positive")

    def client_may_publish(self, channel: str) -> bool:
        """Whether a WebSocket client may publish to ``channel``.

        A read-only prefix covers its channel and every channel below it,
        whole segments only, spelled with or without a trailing ``/``:
        ``users`` and ``users/`` both cover ``users`` and ``users/1``, never
        ``userspace``; ``/`` covers everything.
        """
        return not any(covers(prefix, channel) for prefix in self.read_only)

    @property
    def static_prefix(self) -> str:
        """URL path of the bundled page assets."""
        return self.prefix + "_/static/"
