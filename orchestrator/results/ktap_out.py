"""results.ktap: the whole run as nested KTAP (v1), a subtest per suite (an ftracetest
directory, tcscripts, a guest program), so tools that read kselftest output read this run
unchanged. The statuses map as kselftest's own helpers print them (ktap_helpers.sh):
PASS `ok`, XFAIL `ok ... # XFAIL`, UNSUPPORTED/UNTESTED/SKIP `ok ... # SKIP`, FAIL
`not ok`, UNRESOLVED and ERROR `not ok ... # <status>`; the reason goes in a `#` line
before the result."""
from __future__ import annotations

import pathlib

from .. import cache
from ..model import CaseResult, RunRecord
from ..suites.status import FAILING, SKIPPED

_INDENT = "    "


def _text(s: str) -> str:
    """One line, with nothing KTAP would read as a directive or a new line."""
    return " ".join(str(s).replace("#", "").split())


def _result(n: int, case: CaseResult) -> list[str]:
    status, desc, reason = case.status, _text(case.id), _text(case.reason)
    lines = [f"# {status}: {reason}"] if reason and status != "PASS" else []
    if status == "PASS":
        lines.append(f"ok {n} {desc}")
    elif status == "XFAIL":
        lines.append(f"ok {n} {desc} # XFAIL")
    elif status in SKIPPED:
        lines.append(f"ok {n} {desc} # SKIP {status}" + (f": {reason}" if reason else ""))
    elif status == "FAIL":
        lines.append(f"not ok {n} {desc}")
    else:
        lines.append(f"not ok {n} {desc} # {status}")
    return lines


def render(run: RunRecord) -> str:
    suites: dict[str, list[CaseResult]] = {}
    for c in run.cases:
        suites.setdefault(c.suite, []).append(c)
    arch = _text(run.arch)
    out = ["KTAP version 1", f"# orchestrator run {_text(run.run_id)}: {arch}, "
           f"Linux {_text(run.kernel.version or '?')}", f"1..{len(suites)}"]
    for k, (suite, cases) in enumerate(suites.items(), 1):
        out += [_INDENT + "KTAP version 1", _INDENT + f"# Subtest: {arch}.{_text(suite)}",
                _INDENT + f"1..{len(cases)}"]
        for n, case in enumerate(cases, 1):
            out += [_INDENT + line for line in _result(n, case)]
        failed = any(c.status in FAILING for c in cases)
        out.append(f"{'not ok' if failed else 'ok'} {k} {arch}.{_text(suite)}")
    return "\n".join(out) + "\n"


def write(run: RunRecord, path: pathlib.Path) -> None:
    cache.atomic_write(path, render(run))
