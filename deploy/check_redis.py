#!/usr/bin/env python3
"""Whether a Redis answers at a URL, and whether that URL is this machine's.

``check_redis.py redis://127.0.0.1:6379/0`` prints ``<yes|no> <local|remote> <port>``,
for deploy/up.sh to choose between that Redis and a private one it starts.
"""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

import redis


def check(url: str) -> str:
    """``answers where port`` for the Redis at ``url``."""
    parts = urlsplit(url)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
        answers = "yes"
    except redis.RedisError:
        answers = "no"
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    return f"{answers} {'local' if local else 'remote'} {parts.port or 6379}"


if __name__ == "__main__":
    print(check(sys.argv[1]))
