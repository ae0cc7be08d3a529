"""The conformance checker: same-or-better than the baseline passes, anything worse fails."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from . import check
from .baseline import CASES, allowance

# The case ids of fuzzingclient.json's selection, with this server's verdicts.
NOT_OK = {
    **{f"6.4.{n}": ("NON-STRICT", "OK") for n in range(3, 5)},
    "7.1.6": ("INFORMATIONAL", "INFORMATIONAL"),
    "7.13.1": ("INFORMATIONAL", "INFORMATIONAL"),
    "7.13.2": ("INFORMATIONAL", "INFORMATIONAL"),
    "1.2.1": ("FAILED", "WRONG CODE"),
}


def results(**changes: tuple[str, str]) -> dict[str, dict[str, Any]]:
    """311 cases shaped like the baseline run, with ``changes`` ("7_9_1": verdicts) applied."""
    cases = [f"1.1.{n}" for n in range(1, 9)] + [f"1.2.{n}" for n in range(1, 9)]
    cases += [f"6.4.{n}" for n in range(1, 5)] + ["7.1.6", "7.13.1", "7.13.2"]
    cases += [f"7.9.{n}" for n in range(1, 10)]
    cases += [f"12.1.{n}" for n in range(2, 10)] + [
        f"13.{g}.{n}" for g in range(1, 8) for n in range(2, 10)
    ]
    cases += [f"5.{n}" for n in range(1, 1 + CASES - len(cases))]
    assert len(cases) == CASES
    out = {}
    for case in cases:
        behavior, close = NOT_OK.get(case, ("OK", "OK"))
        out[case] = {"behavior": behavior, "behaviorClose": close}
    for key, (behavior, close) in changes.items():
        out[key.replace("_", ".")] = {"behavior": behavior, "behaviorClose": close}
    return out


def test_baseline_passes() -> None:
    """The baseline itself passes, and its verdicts are counted."""
    outcome = check.judge("a", results())
    assert outcome.failures == 0
    assert outcome.counts["FAILED"] == 1
    assert outcome.counts["UNIMPLEMENTED"] == 0
    assert outcome.close_not_ok == 4


def test_better_is_reported_not_failed() -> None:
    """A NON-STRICT case that turns OK is an improvement, not a failure."""
    outcome = check.judge("a", results(**{"6_4_3": ("OK", "OK")}))
    assert outcome.failures == 0
    assert [line.split(":")[0] for line in outcome.improvements] == ["6.4.3"]


def test_invalid_close_codes_must_stay_fixed() -> None:
    """7.9.x failing again (invalid close codes echoed, as plain Tornado does) is a failure."""
    outcome = check.judge("a", results(**{"7_9_1": ("FAILED", "WRONG CODE")}))
    assert outcome.failures == 1


@pytest.mark.parametrize(
    ("case", "verdicts"),
    [
        ("1_1_1", ("FAILED", "OK")),  # a new failure
        ("1_1_2", ("OK", "UNCLEAN")),  # the messages pass, the closing handshake does not
        ("6_4_2", ("NON-STRICT", "OK")),  # fragments no longer failed fast
        ("6_4_4", ("INFORMATIONAL", "OK")),  # worse than NON-STRICT
        ("7_13_1", ("INFORMATIONAL", "WRONG CODE")),
        ("5_3", ("UNIMPLEMENTED", "OK")),
        ("5_4", ("SOMETHING NEW", "OK")),
    ],
)
def test_worse_fails(case: str, verdicts: tuple[str, str]) -> None:
    """Any case worse than its allowance, in either verdict, fails the check."""
    outcome = check.judge("a", results(**{case: verdicts}))
    assert len(outcome.regressions) == 1
    assert outcome.regressions[0].startswith(case.replace("_", ".") + ":")


def test_compression_cases_must_stay_ok() -> None:
    """permessage-deflate's cases (12.*, 13.*) going back to UNIMPLEMENTED fails the check."""
    outcome = check.judge("a", results(**{"13_3_4": ("UNIMPLEMENTED", "OK")}))
    assert [line.split(":")[0] for line in outcome.regressions] == ["13.3.4"]


def test_a_subset_run_is_not_counted() -> None:
    """A run of some cases only (--cases) is judged case by case, without the count."""
    subset = {k: v for k, v in results().items() if k.startswith(("12.", "13."))}
    assert check.judge("a", subset, expected=None).failures == 0
    assert check.judge("a", subset).problems == [f"64 cases reported, {CASES} expected"]


def test_missing_cases_and_agents_fail() -> None:
    """A truncated run, or an agent with no results, fails."""
    short = results()
    del short["1.1.1"]
    assert check.judge("a", short).problems == [f"{CASES - 1} cases reported, {CASES} expected"]
    outcomes = check.judge_report({"a": results()}, ["a", "b"])
    text, ok = check.report(outcomes)
    assert not ok
    assert "b: no results for this agent" in text
    assert text.splitlines()[-1] == f"conformance: {CASES} passed, 1 failed"


def test_allowances_cover_what_they_should() -> None:
    """Patterns match whole case ids: 1.2.1 is allowed to fail, 1.2.10 and 7.9.1 are not."""
    assert allowance("1.2.1").behavior == "FAILED"
    assert allowance("7.9.1").behavior == "OK"
    assert allowance("1.2.10").behavior == "OK"
    assert allowance("12.1.2").behavior == "OK"
    assert allowance("13.7.9").close == "OK"
    assert allowance("6.4.5").behavior == "OK"


def test_main_reads_a_report_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command line prints the table and exits 1 on a regression."""
    (tmp_path / "index.json").write_text(json.dumps({"x": results(**{"2_1": ("FAILED", "OK")})}))
    assert check.main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "x: WORSE than the baseline in 1 cases:" in out
    assert check.main([str(tmp_path / "missing")]) == 1
