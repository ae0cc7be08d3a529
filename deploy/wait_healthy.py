#!/usr/bin/env python3
"""Wait until every URL's ``/_/health`` answers 200: ``wait_healthy.py SECONDS URL...``.

Exits 0 once all are healthy, 1 if they are not within SECONDS.
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request


def healthy(url: str) -> bool:
    """Whether ``url``/_/health answers 200 now."""
    try:
        with urllib.request.urlopen(url + "/_/health", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def main(timeout: float, urls: list[str]) -> int:
    """Poll until every URL is healthy, or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(healthy(url) for url in urls):
            return 0
        time.sleep(0.2)
    return 1


if __name__ == "__main__":
    sys.exit(main(float(sys.argv[1]), sys.argv[2:]))
