"""Run Autobahn|Testsuite's fuzzing client against tornado-channels, directly and through nginx.

``make conformance`` runs ``.venv/bin/python -m tests.conformance.run --wstest
.venv-autobahn/bin/wstest``. It starts, on free ports:

- ``tornado_channels-direct``: one ``tornado-channels`` process on its embedded
  memory broker;
- ``tornado_channels-nginx``: the project's deployment (tests/deployment.py:
  supervisord, nginx rendered from deploy/) with one worker on its embedded
  broker, reached through nginx's ``/ws/`` location. This agent tests the
  proxy path; behind it, the embedded broker echoes synchronously, as the
  direct agent's does. Through Redis the echo of a valid message comes back
  after a round trip, and failing the connection on a bad frame right after
  it can win that race (Autobahn then says NON-STRICT): a timing race of the
  chat echo, not a protocol fault, and it made the check flaky.

Each agent's cases talk to a channel of their own under ``/autobahn/<run id>/``.
A WebSocket client's messages are published to its channel and come back to
it, so the server is an echo server to Autobahn (which runs its cases one
connection at a time). The servers run with their default settings but one:
every selected case fits in the default --max-message-size (the largest,
7.1.6, is 256 KiB) and ends long before the first ping (--ping-interval 20),
but the compression cases (12.*, 13.*) send 1000 messages as fast as they
can, far past the per-client rate limit (--client-rate 50, burst 100), which
would close them with 1008: the agents run with ``--client-rate 0``.
Compression is on by default, as it is for everyone.

Then tests/conformance/check.py judges the report against the baseline. The
reports go to a temporary directory, removed when the check passes and kept
(and named) when it fails; ``--reports DIR`` keeps them in DIR. Everything
started is stopped by PID at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from ..helpers import Deployment, ServerProcess
from . import check
from .baseline import CASES

HERE = Path(__file__).resolve().parent
#: Bound on the whole fuzzing run (about 3.5 minutes here, 3 of them the compression
#: cases: Autobahn deflates and inflates 64 x 1000 messages in Python 2).
WSTEST_TIMEOUT = 900.0


def spec(reports: Path, servers: dict[str, str], cases: Sequence[str] = ()) -> dict[str, object]:
    """fuzzingclient.json with the output directory and the agents' URLs filled in.

    ``cases`` (patterns such as ``12.*``) runs only those of the selection.
    """
    loaded: dict[str, object] = json.loads((HERE / "fuzzingclient.json").read_text())
    if cases:
        loaded["cases"] = list(cases)
    loaded["outdir"] = str(reports)
    loaded["servers"] = [{"agent": agent, "url": url} for agent, url in servers.items()]
    return loaded


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM (make or CI giving up) unwinds like Ctrl-C: the finally blocks stop everything.
    raise SystemExit(128 + signum)


def fuzz(wstest: Path, work: Path, reports: Path, cases: Sequence[str] = ()) -> bool:
    """Start the servers, run wstest against them, and stop them; whether wstest completed."""
    run_id = uuid.uuid4().hex[:12]
    direct = ServerProcess("--client-rate", "0")
    deployment = Deployment(
        workers=1,
        TORNADO_CHANNELS_REDIS_URL="",
        TC_PRIVATE_REDIS="false",
        TORNADO_CHANNELS_CLIENT_RATE="0",
    )
    try:
        direct.start().wait_healthy()
        deployment.start()
        servers = {
            "tornado_channels-direct": f"{direct.ws_url}/autobahn/{run_id}/direct",
            "tornado_channels-nginx": f"{deployment.ws_url}/ws/autobahn/{run_id}/nginx",
        }
        spec_path = work / "fuzzingclient.json"
        spec_path.write_text(json.dumps(spec(reports, servers, cases), indent=2))
        for agent, url in servers.items():
            print(f"conformance: {agent} at {url}")
        log = work / "wstest.log"
        started = time.monotonic()
        with log.open("wb") as out:
            try:
                result = subprocess.run(
                    [str(wstest), "--mode", "fuzzingclient", "--spec", str(spec_path)],
                    cwd=work,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    timeout=WSTEST_TIMEOUT,
                    check=False,
                )
                failure = f"wstest exited with {result.returncode}" if result.returncode else ""
            except subprocess.TimeoutExpired:
                failure = f"wstest did not finish in {WSTEST_TIMEOUT:.0f}s"
        print(f"conformance: wstest ran {time.monotonic() - started:.0f}s")
        if failure:
            tail = log.read_text(errors="replace").splitlines()[-40:]
            print(f"conformance: {failure}; last lines of {log}:", *tail, sep="\n")
            print(f"--- direct server\n{direct.output()[-3000:]}\n{deployment.logs()}")
            return False
        return True
    finally:
        if direct.process is not None and direct.process.poll() is None:
            direct.terminate()
        direct.log.unlink(missing_ok=True)
        deployment.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Fuzz both agents and check the report; 0 when nothing is worse than the baseline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wstest", type=Path, required=True, help="Autobahn's wstest command")
    parser.add_argument("--reports", type=Path, help="keep Autobahn's reports in this directory")
    parser.add_argument(
        "--cases",
        help="comma-separated case patterns (e.g. '12.*,13.*') to run instead of the whole "
        "selection; the count of cases is then not checked",
    )
    args = parser.parse_args(argv)
    cases = [c.strip() for c in (args.cases or "").split(",") if c.strip()]
    if not args.wstest.exists():
        print(f"conformance: no wstest at {args.wstest}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _terminate)
    work = Path(tempfile.mkdtemp(prefix="tc-autobahn-"))
    reports = args.reports.resolve() if args.reports else work / "reports"
    ok = False
    try:
        if fuzz(args.wstest.resolve(), work, reports, cases):
            outcomes = check.judge_report(
                json.loads((reports / "index.json").read_text()),
                ["tornado_channels-direct", "tornado_channels-nginx"],
                expected=None if cases else CASES,
            )
            text, ok = check.report(outcomes)
            print(text)
    finally:
        if ok:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"conformance: wstest's spec and log are in {work}")
        if args.reports or not ok:
            print(f"conformance: Autobahn's reports (index.html) are in {reports}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
