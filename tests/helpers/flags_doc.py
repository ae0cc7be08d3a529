"""Rewrite docs/flags.md's table from the settings: ``python -m tests.helpers.flags_doc``."""

from __future__ import annotations

import re

from tornado_channels.server.cli import flags_table

from .deployment import ROOT

DOC = ROOT / "docs" / "flags.md"
_TABLE = re.compile(r"\| flag \| default \| \|\n(?:\|.*\|\n)+")


def main() -> None:
    """Replace the table in docs/flags.md with the generated one."""
    text = DOC.read_text()
    DOC.write_text(_TABLE.sub(lambda _: flags_table(), text, count=1))


if __name__ == "__main__":
    main()
