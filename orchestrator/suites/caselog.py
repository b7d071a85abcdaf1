"""Readable excerpts of an ftracetest case log.

A case log is a `set -x` trace: thousands of lines of ftracetest's initialize_ftrace
(it resets every event filter) before the case's own first line. The excerpt keeps
the case's own part, and the reason is one line a developer can act on.
"""
from __future__ import annotations

import re

MAX_LINES = 300
_CASE_START = re.compile(r"^\+ \. /\S+\.tc$")
# ftracetest's exit helpers; a case may also call one that does not exist (exit_failure):
# its "not found" is the failure path's error, not the check that failed.
_EXIT = re.compile(r"^\+ exit_\w+")


def from_output(lines: list[str]) -> str:
    """The case's log as run-case prints it ('# | ' lines, '# log:' headers)."""
    return "\n".join(l[4:] if l.startswith("# | ") else l for l in lines
                     if l.startswith(("# | ", "# log: ")))


def excerpt(log: str) -> str:
    """The case's own lines (from `+ . case.tc` on), or the tail when there is no such line."""
    lines = log.splitlines()
    start = 0
    for i, line in enumerate(lines):
        if _CASE_START.match(line):
            start = i
    # Requirement checks run before the case is sourced: keep the head too if it failed early.
    kept = lines[start:] if start else lines
    if len(kept) > MAX_LINES:
        kept = [f"[... {len(kept) - MAX_LINES} earlier lines cut]"] + kept[-MAX_LINES:]
    return "\n".join(kept)


def reason(log: str, status: str) -> str:
    """One line: the last message the case printed, else the commands it gave up after."""
    lines = excerpt(log).splitlines()
    end = len(lines)
    for i, line in enumerate(lines):
        if _EXIT.match(line):
            end = i
    window = [l.strip() for l in lines[:end]]
    for line in reversed(window):
        if line and not line.startswith(("+", "[...", "execute")) and len(line) > 8:
            return line[:200]
    traced = [l[2:] for l in window if l.startswith("+ ")][-2:]
    if traced:
        verb = "failed at" if status == "FAIL" else "gave up after"
        return f"{verb}: {' ; '.join(traced)}"[:200]
    return status
