"""The WebSocket edge: the handshake, then the socket handed over, and the handler is gone.

The handler checks the handshake (core/handshake.py), admits the client
(subscribing.py) and subscribes it *before* answering, so a client that has
seen its 101 cannot miss a message published after it.  Problems found
before the upgrade (bad name, refused, broker down, a malformed handshake)
are answered like any HTTP error: a status and a JSON body.  Then the socket
goes to a :class:`~.connection.WebSocketConnection` on the event loop's own
transport, reporting to a :class:`~.chat.Chat`; the hub holds the
:class:`~tornado_channels.subscription.Subscription`.

A client that offers permessage-deflate gets it (unless ``--compression off``),
in the shared form of core/deflate.py: its subscription names the parameter
set, and the hub hands it the frame compressed once for all alike.

Plain clients get each payload as it was published.  With ``?positions=1``
they get JSON envelopes with positions, and with ``?since=<position>`` they
first get what they missed since then.
"""

from __future__ import annotations

import logging

from ..core.deflate import Agreement, negotiate
from ..core.frames import CLOSE_INTERNAL_ERROR, Encoding
from ..core.handshake import HandshakeError, client_key, switching_protocols
from . import _tornado
from .chat import Chat
from .connection import WebSocketConnection
from .context import MountContext
from .errors import ApiError, JSONErrorsMixin
from .server_connection import connection_of
from .subscribing import admit, start

log = logging.getLogger("tornado_channels.websocket")


class ChannelSocketHandler(JSONErrorsMixin):
    """``GET /<channel>`` with a WebSocket upgrade: subscribe, answer 101, hand over."""

    SUPPORTED_METHODS = ("GET",)

    def initialize(self, mount: MountContext) -> None:
        """Take what the mount point's routes share (see context.py)."""
        self.mount = mount

    async def get(self, path: str) -> None:
        """Check the handshake, admit and subscribe, answer 101 and hand the socket over."""
        try:
            key = client_key(self.request.headers)
        except HandshakeError as exc:
            raise ApiError(exc.status, exc.error, exc.message, exc.headers) from None
        since = self.get_query_argument("since", None)
        positions = since is not None or self.get_query_argument("positions", None) is not None
        admission = await admit(
            self.request,
            path,
            since=since,
            encoding=Encoding.ENVELOPE if positions else Encoding.RAW,
            mount=self.mount,
            trusted=self.settings.get("trusted_origins", ()),
        )
        agreement = self._compression()
        if agreement is not None:
            admission.subscription.deflate = agreement.outbound
        subscription = await start(admission, self.mount.config.token_leeway)
        chat = Chat(subscription, self.request, self.mount, admission.claims)
        answer = switching_protocols(key, agreement.response if agreement is not None else None)
        try:
            await self._take_over(answer, chat, agreement)
        except BaseException:
            subscription.end()
            raise
        try:
            await subscription.resume()
        except Exception:
            # The HTTP side is finished: nothing would answer an error but the close.
            log.exception("resuming a subscriber failed")
            subscription.close(CLOSE_INTERNAL_ERROR, "internal error")

    def _compression(self) -> Agreement | None:
        """What the client's permessage-deflate offers come to (None: no compression)."""
        if self.mount.config.compression != "on":
            return None
        offers = self.request.headers.get("Sec-WebSocket-Extensions")
        return negotiate(offers, self.mount.config.compression_threshold)

    async def _take_over(self, handshake: bytes, chat: Chat, agreement: Agreement | None) -> None:
        """Move the socket to a WebSocketConnection on the loop's transport; it answers 101."""
        inflater = agreement.inflater() if agreement is not None else None

        def connect(leftover: bytes) -> WebSocketConnection:
            chat.connection = WebSocketConnection(
                chat,
                handshake,
                leftover,
                self.mount.config.max_message_size,
                self.mount.heartbeat,
                inflater,
            )
            return chat.connection

        await connection_of(self.request).take_over(self, connect)
        # The HTTP side is done with: let its objects go (hooks keep the request).
        _tornado.release(self)
        self.request.connection = None
        self.request.server_connection = None
