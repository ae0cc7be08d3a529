"""What the conformance check accepts: plain Tornado's results, and this server's own differences.

The case selection (fuzzingclient.json) is Tornado's own: every case but
9.* (performance), 12.*.1, 12.2-12.5.* and 13.*.1. Plain Tornado 6.6 scores
311 cases there: 295 OK, 4 NON-STRICT, 3 INFORMATIONAL and 9 FAILED.

Each case may end no worse than its allowance below, in both of Autobahn's
verdicts: ``behavior`` (the messages) and ``behaviorClose`` (the closing
handshake). A case that no allowance names must be OK in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

#: Autobahn's verdicts on a case, best first.
BEHAVIORS = ("OK", "NON-STRICT", "INFORMATIONAL", "UNIMPLEMENTED", "FAILED")
#: Autobahn's verdicts on the closing handshake, best first. The last four
#: are all failures, equally bad.
CLOSE_BEHAVIORS = ("OK", "INFORMATIONAL", "WRONG CODE", "UNCLEAN", "FAILED BY CLIENT", "FAILED")
_FAILED_CLOSE_RANK = CLOSE_BEHAVIORS.index("WRONG CODE")

#: How many cases fuzzingclient.json selects.
CASES = 311


def behavior_rank(value: str) -> int:
    """Lower is better; anything Autobahn might add later counts as a failure."""
    return BEHAVIORS.index(value) if value in BEHAVIORS else len(BEHAVIORS)


def close_rank(value: str) -> int:
    """Lower is better; every failed closing handshake ranks the same."""
    if value not in CLOSE_BEHAVIORS:
        return _FAILED_CLOSE_RANK
    return min(CLOSE_BEHAVIORS.index(value), _FAILED_CLOSE_RANK)


@dataclass(frozen=True)
class Allowance:
    """The worst verdicts allowed for the cases matching ``pattern`` (fnmatch), and why."""

    pattern: str
    behavior: str
    close: str
    why: str

    def matches(self, case: str) -> bool:
        """Whether this allowance covers case ``case`` (e.g. "7.9.1")."""
        return fnmatchcase(case, self.pattern)


ALLOWANCES = (
    # Plain Tornado's own results (the baseline).
    # Plain Tornado is NON-STRICT in 6.4.1-6.4.4: it validates a fragmented
    # text message only when its last fragment arrives. inbound.py fails on
    # the first fragment that cannot be UTF-8, so 6.4.1 and 6.4.2 must be OK.
    Allowance(
        "6.4.[34]",
        "NON-STRICT",
        "OK",
        "invalid UTF-8 inside one frame that arrives in pieces: a frame is checked once it is "
        "whole, not as its bytes arrive",
    ),
    Allowance(
        "7.1.6",
        "INFORMATIONAL",
        "INFORMATIONAL",
        "256K message, close, then ping: the echo still in flight is reported, not judged",
    ),
    Allowance(
        "7.13.[12]",
        "INFORMATIONAL",
        "INFORMATIONAL",
        "close codes 5000 and 65535: RFC 6455 does not define them; any answer is informational",
    ),
    # 7.9.1-7.9.9 (invalid close codes) fail on plain Tornado, which echoes
    # them; tornado_channels answers 1002 (inbound.py), so they must be OK.
    # This server's deliberate differences from a plain Tornado echo server.
    Allowance(
        "1.2.1",
        "FAILED",
        "WRONG CODE",
        "an empty binary message comes back as an empty text frame: published bytes travel as "
        "text whenever they are valid UTF-8 (README: Subscribe), and b'' is; the sender's "
        "opcode is not carried",
    ),
)

_STRICT = Allowance("*", "OK", "OK", "")


def allowance(case: str) -> Allowance:
    """The allowance for ``case``: the first that matches, or OK in both verdicts."""
    return next((a for a in ALLOWANCES if a.matches(case)), _STRICT)
