"""KTAP / TAP 13 parsing, and ftracetest's refinement of it.

ftracetest -K prints `ok N desc`, `ok N desc # SKIP`, `not ok N desc # UNRESOLVED`,
`ok N desc # XFAIL`, `not ok N desc # error`. KTAP folds UNSUPPORTED and UNTESTED
into SKIP, so run-case also prints ftracetest's own verdict line
(`# verdict: [N] desc<TAB>[UNSUPPORTED]`), which takes precedence when present.
"""
from __future__ import annotations

import dataclasses
import re

_RESULT = re.compile(r"^(?P<indent>\s*)(?P<ok>not ok|ok)\s+(?P<num>\d+)\s*(?:-\s*)?"
                     r"(?P<desc>[^#]*?)\s*(?:#\s*(?P<directive>\S+)\s*(?P<reason>.*))?$")
_PLAN = re.compile(r"^\s*1\.\.(\d+)")
_VERDICT = re.compile(r"^# verdict: \[(\d+)\]\s*(.*?)\s*\[([A-Z]+)\]\s*$")
_FTRACETEST_CLASSES = {"PASS", "FAIL", "UNRESOLVED", "UNTESTED", "UNSUPPORTED", "XFAIL"}


@dataclasses.dataclass
class KtapResult:
    number: int
    description: str
    status: str
    directive: str | None
    reason: str
    diagnostics: list[str]     # "#" lines and other output printed before this result


@dataclasses.dataclass
class KtapDocument:
    plan: int | None
    results: list[KtapResult]
    trailing: list[str]


def _status(ok: bool, directive: str | None) -> str:
    d = (directive or "").upper()
    if d == "SKIP":
        return "SKIP"
    if d in ("XFAIL", "TODO"):
        return "XFAIL"
    if ok:
        return "PASS"
    if d == "UNRESOLVED":
        return "UNRESOLVED"
    if d == "ERROR":
        return "ERROR"
    return "FAIL"


def parse(lines: list[str]) -> KtapDocument:
    """Parse top-level KTAP results; nested (indented) subtests are kept as diagnostics."""
    plan = None
    results: list[KtapResult] = []
    pending: list[str] = []
    for line in lines:
        m = _RESULT.match(line)
        if m and not m.group("indent"):
            results.append(KtapResult(
                number=int(m.group("num")), description=m.group("desc").strip(),
                status=_status(m.group("ok") == "ok", m.group("directive")),
                directive=m.group("directive"), reason=(m.group("reason") or "").strip(),
                diagnostics=pending))
            pending = []
            continue
        p = _PLAN.match(line)
        if p and plan is None and not line.startswith(" "):
            plan = int(p.group(1))
            continue
        if line.startswith(("TAP version", "KTAP version")):
            continue
        pending.append(line)
    return KtapDocument(plan, results, pending)


def ftracetest_verdicts(lines: list[str]) -> dict[int, str]:
    """Case number -> ftracetest's own class, from run-case's '# verdict:' lines."""
    out = {}
    for line in lines:
        m = _VERDICT.match(line.strip())
        if m and m.group(3) in _FTRACETEST_CLASSES:
            out[int(m.group(1))] = m.group(3)
        elif m and m.group(3) == "UNDEFINED":
            out[int(m.group(1))] = "ERROR"
    return out

