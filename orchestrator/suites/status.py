"""The status vocabulary of a case, its order, and its counts: defined here once.

ftracetest's classes (PASS, FAIL, UNRESOLVED, UNTESTED, UNSUPPORTED, XFAIL), KTAP's SKIP,
and the orchestrator's own ERROR (the guest did not finish the case).
"""
from __future__ import annotations

from typing import Iterable

from ..model import STATUSES, CaseResult, RunRecord

# STATUSES (model.Status): every status, in the order counts are shown.
# Statuses that make a run fail.
FAILING = frozenset({"FAIL", "UNRESOLVED", "ERROR"})
# The case did not run its check here (the kernel or the config lacks what it tests).
SKIPPED = frozenset({"UNSUPPORTED", "UNTESTED", "SKIP"})
# The case ran and behaved as expected.
PASSED = frozenset({"PASS", "XFAIL"})
assert FAILING | SKIPPED | PASSED == set(STATUSES)


def counts(cases: Iterable[CaseResult]) -> dict[str, int]:
    """Status -> number of cases, for the statuses that occur, in STATUSES order."""
    seen: dict[str, int] = {}
    for c in cases:
        seen[c.status] = seen.get(c.status, 0) + 1
    return {s: seen[s] for s in STATUSES if s in seen}


def counts_line(run: RunRecord) -> str:
    """`58 cases: 55 pass, 1 fail, 1 error, 1 unsupported; 2 kernel splat(s)`"""
    n = counts(run.cases)
    parts = [f"{count} {status.lower()}" for status, count in n.items()]
    splats = len(run.splats)
    return (f"{sum(n.values())} cases: {', '.join(parts) or 'none'}"
            + (f"; {splats} kernel splat(s)" if splats else ""))
