"""Compare an Autobahn fuzzingclient report with the baseline; exit 1 on any regression.

``python -m tests.conformance.check REPORTS_DIR [--agent NAME ...]`` reads
REPORTS_DIR/index.json, prints a table of verdicts per agent, the cases
better than the baseline, and every case worse than it. Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .baseline import BEHAVIORS, CASES, allowance, behavior_rank, close_rank


def case_key(case: str) -> tuple[int, ...]:
    """Sort "7.13.1" after "7.9.9" (numerically, part by part)."""
    return tuple(int(part) for part in case.split(".") if part.isdigit())


@dataclass
class AgentResult:
    """One agent's verdicts, judged against the baseline."""

    agent: str
    counts: Counter[str] = field(default_factory=Counter)
    close_not_ok: int = 0
    cases: int = 0
    #: Cases worse than the baseline.
    regressions: list[str] = field(default_factory=list)
    #: Cases better than the baseline.
    improvements: list[str] = field(default_factory=list)
    #: Whole-report problems: an agent missing, cases missing.
    problems: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        """Regressions and problems: anything that fails the check."""
        return len(self.regressions) + len(self.problems)


def judge(
    agent: str, results: Mapping[str, Mapping[str, Any]], expected: int | None = CASES
) -> AgentResult:
    """Judge one agent's ``{case: {"behavior": ..., "behaviorClose": ...}}`` results.

    ``expected`` is how many cases there must be (None for a subset).
    """
    outcome = AgentResult(agent, cases=len(results))
    if expected is not None and len(results) != expected:
        outcome.problems.append(f"{len(results)} cases reported, {expected} expected")
    for case in sorted(results, key=case_key):
        behavior = str(results[case].get("behavior"))
        close = str(results[case].get("behaviorClose"))
        outcome.counts[behavior if behavior in BEHAVIORS else "FAILED"] += 1
        outcome.close_not_ok += close != "OK"
        allowed = allowance(case)
        got = f"{behavior}/{close}"
        limit = f"{allowed.behavior}/{allowed.close}"
        ranks = (behavior_rank(behavior), close_rank(close))
        limits = (behavior_rank(allowed.behavior), close_rank(allowed.close))
        if any(rank > most for rank, most in zip(ranks, limits, strict=True)):
            why = f" ({allowed.why})" if allowed.why else ""
            outcome.regressions.append(f"{case}: {got}, baseline {limit}{why}")
        elif any(rank < most for rank, most in zip(ranks, limits, strict=True)):
            outcome.improvements.append(f"{case}: {got} (baseline {limit})")
    return outcome


def judge_report(
    index: Mapping[str, Any], agents: Sequence[str] = (), expected: int | None = CASES
) -> list[AgentResult]:
    """Judge every agent of an index.json (each of ``agents`` must be there)."""
    outcomes = []
    for agent in agents or sorted(index):
        if agent not in index:
            missing = AgentResult(agent)
            missing.problems.append("no results for this agent")
            outcomes.append(missing)
        else:
            outcomes.append(judge(agent, index[agent], expected))
    if not outcomes:
        missing = AgentResult("(none)")
        missing.problems.append("the report has no agents")
        outcomes.append(missing)
    return outcomes


def table(outcomes: Sequence[AgentResult]) -> str:
    """Counts by verdict, one row per agent."""
    columns = ["agent", "cases", *BEHAVIORS, "close not OK", "worse"]
    rows = [
        [
            o.agent,
            str(o.cases),
            *(str(o.counts[b]) for b in BEHAVIORS),
            str(o.close_not_ok),
            str(o.failures),
        ]
        for o in outcomes
    ]
    widths = [max(len(row[i]) for row in [columns, *rows]) for i in range(len(columns))]
    lines = []
    for row in [columns, *rows]:
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
    return "\n".join(lines)


def report(outcomes: Sequence[AgentResult]) -> tuple[str, bool]:
    """The printed summary, and whether every agent is at least as good as the baseline."""
    lines = [table(outcomes)]
    for o in outcomes:
        if o.improvements:
            lines.append(f"{o.agent}: better than the baseline in {len(o.improvements)} cases:")
            lines.extend(f"  {line}" for line in o.improvements)
    for o in outcomes:
        lines.extend(f"{o.agent}: {problem}" for problem in o.problems)
        if o.regressions:
            lines.append(f"{o.agent}: WORSE than the baseline in {len(o.regressions)} cases:")
            lines.extend(f"  {line}" for line in o.regressions)
    failed = sum(o.failures for o in outcomes)
    passed = sum(o.cases - len(o.regressions) for o in outcomes)
    # The closing line, in the plain form CI reads: cases no worse than the baseline.
    lines.append(f"conformance: {passed} passed, {failed} failed")
    return "\n".join(lines), failed == 0


def main(argv: Sequence[str] | None = None) -> int:
    """Check a report directory; 0 when no case is worse than the baseline."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", type=Path, help="Autobahn's outdir (holding index.json)")
    parser.add_argument(
        "--agent", action="append", default=[], help="an agent that must be in the report"
    )
    args = parser.parse_args(argv)
    index_path = args.reports / "index.json" if args.reports.is_dir() else args.reports
    try:
        index = json.loads(index_path.read_text())
    except (OSError, ValueError) as exc:
        print(f"conformance: cannot read {index_path}: {exc}", file=sys.stderr)
        return 1
    text, ok = report(judge_report(index, args.agent))
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
