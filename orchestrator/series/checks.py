"""The checks a series gets before it is posted, per patch, as netdev's patch CI gives
them: the tree's own scripts/checkpatch.pl --strict on each patch as it was sent (its
summary line and the first findings with the file and line they point at), and the
kernel-doc warnings (scripts/kernel-doc -none -Wall) the patch adds in the .c and .h
files it touches, against the same files before it.

checkpatch runs in the series' checkout in the cache (it reads the tree's spelling list
and runs git there), never in the user's tree. Its findings are told, not judged: a
style error does not make the series regress.
"""
from __future__ import annotations

import pathlib
import re
import subprocess
import tempfile

from .. import hosttools
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
        try:
            text = p.raw
            if not text and p.commit:   # a range: the commit as format-patch writes it
                text = hosttools.run_tree(["git", "-C", str(applied.worktree), "format-patch", "-1", "--stdout",
                                       p.commit], capture_output=True, timeout=TIMEOUT_SECONDS).stdout
            proc = hosttools.run_tree(["perl", str(script), "--strict", "--show-types", "--no-color", "-"],
                                      input=text, capture_output=True, cwd=applied.worktree,
                                      timeout=TIMEOUT_SECONDS)
            summary, errors, warnings, checks, findings = parse(
                proc.stdout.decode(errors="replace") or proc.stderr.decode(errors="replace"))
        except (OSError, subprocess.TimeoutExpired) as exc:
            summary, errors, warnings, checks, findings = f"checkpatch did not run: {exc}", 0, 0, 0, []
        out.append(PatchCheck(number=p.number, subject=p.subject, summary=summary, errors=errors,
                              warnings=warnings, checks=checks, findings=findings[:MAX_FINDINGS],
                              kernel_doc=kernel_doc_added(applied.worktree, p)[:MAX_FINDINGS]))
    found = sum(c.errors + c.warnings + c.checks + len(c.kernel_doc) for c in out)
    say(f"checkpatch --strict: {found} finding(s) over {len(out)} patch(es)"
        + (": " + "; ".join(f"patch {c.number}: {c.errors} errors, {c.warnings} warnings, {c.checks} checks"
                            + (f", {len(c.kernel_doc)} new kernel-doc warning(s)" if c.kernel_doc else "")
                            for c in out if c.errors + c.warnings + c.checks + len(c.kernel_doc)) if found else ""))
    return out


KERNEL_DOC = "scripts/kernel-doc"
# 7.2's (Python) kernel-doc: `Warning: f.c:4 msg`; 6.12's (Perl): `f.c:5: warning: msg`.
_KDOC = (re.compile(r"^Warning: (?P<file>\S+?):(?P<line>\d+):? (?P<msg>.*)$"),
         re.compile(r"^(?P<file>\S+?):(?P<line>\d+): warning: (?P<msg>.*)$"))


def _kernel_doc(worktree: pathlib.Path, text: bytes, name: str) -> list[tuple[str, str]]:
    """(line, message) of kernel-doc -none -Wall on one version of a file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / name
        path.write_bytes(text)
        try:
            proc = hosttools.run_tree([str(worktree / KERNEL_DOC), "-none", "-Wall", str(path)], capture_output=True,
                                      cwd=worktree, timeout=TIMEOUT_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            return []
    out = []
    for line in (proc.stdout + proc.stderr).decode(errors="replace").splitlines():
        m = next((m for m in (r.match(line.strip()) for r in _KDOC) if m), None)
        if m:
            out.append((m.group("line"), m.group("msg")))
    return list(dict.fromkeys(out))


def _blob(worktree: pathlib.Path, rev: str, path: str) -> bytes | None:
    try:
        proc = hosttools.run_tree(["git", "-C", str(worktree), "show", f"{rev}:{path}"], capture_output=True,
                                  timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return None
    return proc.stdout if proc.returncode == 0 else None


def kernel_doc_added(worktree: pathlib.Path, patch: series_mod.Patch) -> list[str]:
    """`file:line: message` for each kernel-doc warning in a touched .c/.h file after the
    patch that the file did not have before it (a message moved to another line is no
    new one)."""
    if not (worktree / KERNEL_DOC).is_file() or not patch.commit:
        return []
    added = []
    for rel in patch.files:
        if not rel.endswith((".c", ".h")):
            continue
        after = _blob(worktree, patch.commit, rel)
        if after is None:
            continue   # the patch deletes it
        before = _blob(worktree, f"{patch.commit}^", rel)
        name = pathlib.PurePosixPath(rel).name
        old = {msg for _, msg in _kernel_doc(worktree, before, name)} if before is not None else set()
        added += [f"{rel}:{line}: {msg}" for line, msg in _kernel_doc(worktree, after, name) if msg not in old]
    return added
