"""A publish's body as it arrives: kept up to its limit, or counted and dropped after a refusal.

Nothing here reads a socket or writes an answer: the publishing request
(publish_request.py) hands each chunk to its :class:`PublishBody` and acts
on what it says.

- Within the limit, the body is kept, to be published whole.
- A chunked body has no Content-Length to refuse up front: it is counted,
  and past the limit nothing more is kept (then answered 413).
- Once the request is refused from its head, nothing is kept either: the
  chunks are counted, so that a refusal waiting for the body (see
  :data:`DISCARD_LIMIT`) waits no longer than that.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .errors import ApiError

#: On a server that closes a connection answered before its body was read
#: (Tornado's own), a refusal waits for a body up to this size, reading and
#: dropping it, so a client that sends its whole body before reading gets
#: the answer instead of a reset (and keeps its connection).
DISCARD_LIMIT = 16 << 20


class PublishBody:
    """One request's body: what is kept of it, and what is dropped after its refusal.

    ``limit`` is the largest body kept (the message size, or a batch's).
    """

    __slots__ = ("data", "discarded", "limit", "refusal", "too_large")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: What is kept of the body so far.
        self.data = bytearray()
        #: Whether the body passed the limit (and none of it is kept).
        self.too_large = False
        #: The refusal decided from the request's head, once there is one.
        self.refusal: ApiError | None = None
        #: Bytes dropped since the refusal.
        self.discarded = 0

    def discard(self, refusal: ApiError) -> None:
        """Keep nothing more: ``refusal`` answers the request (now, or once its body is read)."""
        self.refusal = refusal

    def receive(self, chunk: bytes) -> ApiError | None:
        """Keep ``chunk`` or drop it; return the refusal that can wait for the body no longer.

        That is the refusal's, once more than :data:`DISCARD_LIMIT` bytes of
        a refused body arrived (a chunked one, whose size nobody declared);
        None otherwise.
        """
        refusal = self.refusal
        if refusal is not None:
            self.discarded += len(chunk)
            return refusal if self.discarded > DISCARD_LIMIT else None
        if self.too_large:
            return None
        if len(self.data) + len(chunk) > self.limit:
            self.too_large = True
            self.data = bytearray()
        else:
            self.data += chunk
        return None
