"""schemathesis against a real server: the OpenAPI document and the answers agree."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from ..helpers import ServerProcess

Start = Callable[..., ServerProcess]
HOOKS = Path(__file__).with_name("openapi_formats.py")

#: Not fuzzed: GET on a channel, a subtree or ``/`` is the subscribing edge, whose
#: answers are a WebSocket upgrade or an endless event stream (or a static HTML
#: page): no request/response pair to check.  tests/web/test_websocket*.py and
#: test_sse.py cover them; their POSTs and every other operation are fuzzed.
NOT_FUZZED = ("subscribeToChannel", "subscribeToSubtree", "subscribeToEverything")

#: Statuses the document gives that schemathesis's defaults do not expect:
#: 422 for a valid publish whose ``Idempotency-Key`` a generated request before
#: it used for another message (the generator draws keys again, by design); 414
#: for an invalid request whose line the generator made longer than 8 KiB, refused
#: by the wire before its parameters are read.  No valid request reaches 414.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]

[checks.negative_data_rejection]
expected-statuses = [
    "400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428", "429",
    "5xx",
]
"""


@pytest.mark.processes
def test_schemathesis_checks_all_find_no_mismatch(servers: Start, tmp_path: Path) -> None:
    """`schemathesis run --checks all` over the served document reports no failure."""
    server = servers()
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    exclusions = [arg for op in NOT_FUZZED for arg in ("--exclude-operation-id", op)]
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{server.url}/_/openapi.json",
        "--checks",
        "all",
        # Bounded and the same every run: a fixed seed and hypothesis's derandomized
        # mode (which keeps no example database), so a pass is never luck.
        "--max-examples",
        "10",
        "--seed",
        "29",
        "--generation-deterministic",
        "--request-timeout",
        "10",
        "--no-color",
        *exclusions,
    ]
    result = subprocess.run(
        command,
        cwd=tmp_path,  # Where schemathesis leaves its own files.
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-6000:]
    assert "9 selected / 12 total" in report, report[-3000:]
    assert "No test cases were generated" not in report
