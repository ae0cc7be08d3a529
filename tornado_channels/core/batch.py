"""Batch publishing's request body: many channel-message pairs in one JSON document.

``POST /_/publish`` takes::

    {"messages": [{"channel": "users/1", "data": "Hi there!"},
                  {"channel": "users/", "data_base64": "AAEC"}]}

``channel`` is written as in the channel's URL (below the mount point; a
leading ``/`` is allowed, percent-escapes are decoded, a trailing ``/`` names
a subtree).  ``data`` is text, published as its UTF-8 bytes; ``data_base64``
carries any bytes.  The whole batch is checked before anything is published,
so a bad entry refuses the batch and publishes nothing.  Pure: no I/O.
"""

from __future__ import annotations

import binascii
import json
from base64 import b64decode
from typing import Any

from .channels import InvalidChannel, Target, parse_target


class InvalidBatch(ValueError):
    """Why a batch was refused: an ``error`` code, and the ``index`` of the entry at fault."""

    def __init__(
        self, error: str, message: str, index: int | None = None, *, too_large: bool = False
    ) -> None:
        super().__init__(message)
        self.error = error
        self.index = index
        #: Refused for its size (413) rather than its content (400).
        self.too_large = too_large


def parse_batch(
    body: bytes, *, max_messages: int, max_message_size: int
) -> list[tuple[Target, bytes]]:
    """The (target, payload) pairs of a batch body, in order; raise InvalidBatch if any is bad."""
    try:
        document = json.loads(body, parse_int=_number, parse_float=_number)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError: both ValueErrors
        raise InvalidBatch("invalid_batch", f"the body is not JSON: {exc}") from None
    except RecursionError:
        # The decoder recurses per level of [ or {: thousands of them exhaust
        # the stack.  A batch is three levels deep; nothing valid comes near.
        raise InvalidBatch("invalid_batch", "the body's JSON is nested too deeply") from None
    messages = document.get("messages") if isinstance(document, dict) else None
    if not isinstance(messages, list):
        raise InvalidBatch(
            "invalid_batch", 'the body must be a JSON object with a "messages" array'
        )
    if len(messages) > max_messages:
        raise InvalidBatch(
            "batch_too_large",
            f"{len(messages)} messages in one batch; the maximum is {max_messages}",
            too_large=True,
        )
    return [_entry(i, entry, max_message_size) for i, entry in enumerate(messages)]


class _Number:
    """Where the body had a number: no field of a batch is one, so its digits are never read."""

    def __repr__(self) -> str:
        return "<a JSON number>"


_NUMBER = _Number()


def _number(digits: str) -> _Number:
    # Read as int, 5000 digits raise ValueError (Python's int-string conversion
    # limit), and where a host application lifted the limit, a megabyte of them
    # takes seconds; read as float they would still be parsed.  Not read at all,
    # any number costs what the decoder's scan of it costs, and every check
    # below refuses it where a string, object or array belongs.
    return _NUMBER


def _entry(index: int, entry: Any, max_message_size: int) -> tuple[Target, bytes]:
    if not isinstance(entry, dict):
        raise InvalidBatch("invalid_batch", f"message {index} is not a JSON object", index)
    channel = entry.get("channel")
    if not isinstance(channel, str):
        raise InvalidBatch("invalid_batch", f'message {index} has no "channel" string', index)
    try:
        target = parse_target(channel[1:] if channel.startswith("/") else channel)
    except InvalidChannel as exc:
        raise InvalidBatch("invalid_channel", f"message {index}: {exc}", index) from None
    payload = _payload(index, entry)
    if len(payload) > max_message_size:
        raise InvalidBatch(
            "message_too_large",
            f"message {index} exceeds the maximum message size of {max_message_size} bytes",
            index,
            too_large=True,
        )
    return target, payload


def _payload(index: int, entry: dict[str, Any]) -> bytes:
    # Present, not "not null": {"data": "x", "data_base64": null} names both fields
    # and is refused, as the document's oneOf says, rather than read as "data" alone.
    if ("data" in entry) == ("data_base64" in entry):
        raise InvalidBatch(
            "invalid_batch", f'message {index} needs exactly one of "data" or "data_base64"', index
        )
    text, encoded = entry.get("data"), entry.get("data_base64")
    if "data" in entry:
        if not isinstance(text, str):
            raise InvalidBatch("invalid_batch", f'message {index}: "data" must be a string', index)
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            # JSON can spell lone surrogates (\ud800) that no UTF-8 can carry.
            raise InvalidBatch(
                "invalid_batch", f'message {index}: "data" is not valid Unicode text', index
            ) from None
    if not isinstance(encoded, str):
        raise InvalidBatch(
            "invalid_batch", f'message {index}: "data_base64" must be a string', index
        )
    try:
        return b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidBatch(
            "invalid_batch", f'message {index}: "data_base64" is not valid base64', index
        ) from None
