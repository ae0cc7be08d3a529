"""Schemathesis hooks: strategies for the document's own string formats.

JSON Schema counts characters; a channel name is limited to 255 bytes of
UTF-8, which the document names as the formats ``channel-segment`` and
``channel-target``.  Their ``pattern`` and ``maxLength`` refuse everything the
server refuses but a name of non-ASCII characters past 255 bytes; these
strategies generate the valid values exactly, from the document's patterns.
"""

from __future__ import annotations

import json
from pathlib import Path

import schemathesis
from hypothesis import strategies as st

import tornado_channels

SPEC = json.loads((Path(tornado_channels.__file__).parent / "web" / "openapi.json").read_text())
SCHEMAS = SPEC["components"]["schemas"]
MAX_NAME_BYTES = 255


def utf8_size(text: str) -> int | None:
    """The UTF-8 length of ``text``, None when it holds a lone surrogate (no UTF-8 can)."""
    try:
        return len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return None


def fits(name: str) -> bool:
    """Whether ``name`` (its leading and trailing ``/`` aside) is at most 255 bytes of UTF-8."""
    size = utf8_size(name.strip("/"))
    return size is not None and size <= MAX_NAME_BYTES


def from_schema(schema: dict[str, object]) -> st.SearchStrategy[str]:
    """The strings ``schema``'s pattern and maxLength allow that are at most 255 bytes."""
    pattern = str(schema["pattern"])
    longest = int(str(schema["maxLength"]))
    return st.from_regex(pattern, fullmatch=True).filter(lambda s: len(s) <= longest and fits(s))


schemathesis.openapi.format("channel-segment", from_schema(SCHEMAS["Segment"]))
schemathesis.openapi.format(
    "channel-target", from_schema(SCHEMAS["BatchEntry"]["properties"]["channel"])
)
