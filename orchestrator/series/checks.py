"""The checks a series gets before it is posted, per patch, as netdev's patch CI gives
them: the tree's own scripts/checkpatch.pl --strict on each patch as it was sent (its
summary line and the first findings with the file and line they point at).

checkpatch runs in the series' checkout in the cache (it reads the tree's spelling list
and runs git there), never in the user's tree. Its findings are told, not judged: a
style error does not make the series regress.
"""
from __future__ import annotations

import re
import subprocess

from ..model import PatchCheck
from . import patches as series_mod

CHECKPATCH = "scripts/checkpatch.pl"
TIMEOUT_SECONDS = 120
# Findings kept per patch: the summary line counts them all.
MAX_FINDINGS = 8
_TOTAL = re.compile(r"^total: (\d+) errors, (\d+) warnings, (?:(\d+) checks, )?\d+ lines checked$", re.M)
_FINDING = re.compile(r"^(ERROR|WARNING|CHECK):([A-Z0-9_]+): (.*)$")
_WHERE = re.compile(r"^#\d+: FILE: (\S+?):(\d+):")


def parse(output: str) -> tuple[str, int, int, int, list[str]]:
    """checkpatch's report: (its total line, errors, warnings, checks, the findings as
    `WARNING:AVOID_BUG kernel/trace/trace_kprobe.c:938: Do not crash the kernel...`)."""
    lines = output.splitlines()
    findings = []
    for k, line in enumerate(lines):
        m = _FINDING.match(line)
        if not m:
            continue
        where = _WHERE.match(lines[k + 1]) if k + 1 < len(lines) else None
        at = f" {where.group(1)}:{where.group(2)}" if where else ""
        findings.append(f"{m.group(1)}:{m.group(2)}{at}: {m.group(3)}")
    total = _TOTAL.search(output)
    if total is None:
        said = next((l.strip() for l in lines if l.strip()), "nothing")
        return f"checkpatch gave no verdict: {said[:200]}", 0, 0, 0, findings
    return (total.group(0), int(total.group(1)), int(total.group(2)), int(total.group(3) or 0), findings)


def checkpatch(applied: series_mod.AppliedSeries, say=print) -> list[PatchCheck]:
    """Each patch through the tree's checkpatch.pl --strict; none when the tree has no
    checkpatch (not a kernel tree of ours to judge)."""
    script = applied.worktree / CHECKPATCH
    if not script.is_file():
        return []
    out = []
    for p in applied.series.patches:
        text = p.raw
        if not text and p.commit:   # a range: the commit as format-patch writes it
            text = subprocess.run(["git", "-C", str(applied.worktree), "format-patch", "-1", "--stdout", p.commit],
                                  capture_output=True).stdout
        try:
            proc = subprocess.run(["perl", str(script), "--strict", "--show-types", "--no-color", "-"],
                                  input=text, capture_output=True, cwd=applied.worktree,
                                  timeout=TIMEOUT_SECONDS)
            summary, errors, warnings, checks, findings = parse(
                proc.stdout.decode(errors="replace") or proc.stderr.decode(errors="replace"))
        except (OSError, subprocess.TimeoutExpired) as exc:
            summary, errors, warnings, checks, findings = f"checkpatch did not run: {exc}", 0, 0, 0, []
        out.append(PatchCheck(number=p.number, subject=p.subject, summary=summary, errors=errors,
                              warnings=warnings, checks=checks, findings=findings[:MAX_FINDINGS]))
    found = sum(c.errors + c.warnings + c.checks for c in out)
    say(f"checkpatch --strict: {found} finding(s) over {len(out)} patch(es)"
        + (": " + "; ".join(f"patch {c.number}: {c.errors} errors, {c.warnings} warnings, {c.checks} checks"
                            for c in out if c.errors + c.warnings + c.checks) if found else ""))
    return out
