"""``python -m tornado_channels``: the same as the ``tornado-channels`` command."""

from .server.cli import main

raise SystemExit(main())
