#!/usr/bin/env python3
"""Render deploy/nginx.conf.template for the chosen ports: ``render_nginx.py > nginx.conf``.

Settings come from the environment, as deploy/up.sh exports them:
TC_RUN_DIR, TC_PORT, TC_ADDRESS, TC_WORKERS, TC_BASE_PORT, TC_READ_TIMEOUT, and
the workers' own TORNADO_CHANNELS_MAX_MESSAGE_SIZE and _MAX_BATCH_BYTES, whose
defaults are read from tornado_channels itself (run it with the project's
Python), so nginx and the workers always refuse the same bodies.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tornado_channels.web.config import ChannelConfig

TEMPLATE = Path(__file__).with_name("nginx.conf.template")
DEFAULTS = ChannelConfig()


def render(env: dict[str, str]) -> str:
    """The nginx configuration for the settings in ``env``."""
    run_dir = Path(env["TC_RUN_DIR"]).resolve()
    workers = int(env.get("TC_WORKERS", "1"))
    base_port = int(env["TC_BASE_PORT"])
    upstream = "\n".join(
        # max_fails=0: never mark a local worker down. A stopped one refuses at
        # once and nginx moves to the next, and a restarted one gets traffic
        # the moment it listens again, instead of after a fail_timeout.
        f"        server 127.0.0.1:{base_port + number} max_fails=0;"
        for number in range(workers)
    )
    values = {
        "RUN_DIR": str(run_dir),
        "PORT": env.get("TC_PORT", "5000"),
        "ADDRESS": env.get("TC_ADDRESS", "127.0.0.1"),
        "UPSTREAM_SERVERS": upstream,
        "MAX_BODY": env.get("TORNADO_CHANNELS_MAX_MESSAGE_SIZE", str(DEFAULTS.max_message_size)),
        "MAX_BATCH_BODY": env.get("TORNADO_CHANNELS_MAX_BATCH_BYTES", str(DEFAULTS.max_batch_bytes)),
        "READ_TIMEOUT": env.get("TC_READ_TIMEOUT", "60s"),
    }
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        path = run_dir / "nginx-tmp" / sub
        path.mkdir(parents=True, exist_ok=True)
        # nginx's workers drop root privileges; let them use these directories.
        path.chmod(0o1777)
    return text


if __name__ == "__main__":
    sys.stdout.write(render(dict(os.environ)))
