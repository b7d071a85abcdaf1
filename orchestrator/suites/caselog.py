"""Readable excerpts of an ftracetest case log.

A case log is a `set -x` trace: thousands of lines of ftracetest's initialize_ftrace
(it resets every event filter) before the case's own first line. The excerpt keeps
the case's own part, and the reason is one line a developer can act on.
"""
from __future__ import annotations

import re

MAX_LINES = 300
# How many traced commands before the end a message may come from to be the reason.
MESSAGE_REACH = 2
_CASE_START = re.compile(r"^\+ \. /\S+\.tc$")
# ftracetest's exit helpers; a case may also call one that does not exist (exit_failure):
# its "not found" is the failure path's error, not the check that failed.
_EXIT = re.compile(r"^\+ exit_\w+")
# run-case's copy of tracefs's error_log after a case that did not pass, each entry
# without its timestamp:
#   trace_kprobe: error: Invalid argument type
#     Command: p:myevent vfs_read arg=%ax:foo
#                                       ^
ERROR_LOG_PREFIX = "error_log: "
_ERROR_ENTRY = re.compile(r"^(?P<source>[\w-]+): error: (?P<message>.+)$")
_COMMAND = re.compile(r"^(?P<indent>\s*Command: )(?P<command>.*)$")


def from_output(lines: list[str]) -> str:
    """The case's log as run-case prints it ('# | ' lines, '# log:' headers)."""
    return "\n".join(l[4:] if l.startswith("# | ") else l[2:] if l.startswith("# error_log: ") else l
                     for l in lines if l.startswith(("# | ", "# log: ", "# error_log: ")))


def kernel_error(log: str) -> str:
    """The last entry of tracefs's error_log in a case log, as one line: who refused what,
    and the word of the command the kernel pointed at; '' when the log has none."""
    entries = [l[len(ERROR_LOG_PREFIX):] for l in log.splitlines() if l.startswith(ERROR_LOG_PREFIX)]
    for i in range(len(entries) - 1, -1, -1):
        m = _ERROR_ENTRY.match(entries[i])
        if not m:
            continue
        said = f"{m.group('source')}: {m.group('message').strip()}"
        cmd = _COMMAND.match(entries[i + 1]) if i + 1 < len(entries) else None
        if cmd is None:
            return said
        command = cmd.group("command")
        caret = entries[i + 2].find("^") - len(cmd.group("indent")) if i + 2 < len(entries) else -1
        if 0 <= caret < len(command):
            word = command[caret:].split()[0] if command[caret:].strip() else ""
            return f"{said} at '{word}' in '{command}'" if word else f"{said} in '{command}'"
        return f"{said} in '{command}'"
    return ""


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
    lines = [l for l in excerpt(log).splitlines() if not l.startswith(ERROR_LOG_PREFIX)]
    said = _reason(lines, status)
    refused = kernel_error(log)
    return f"{said} (kernel: {refused})"[:300] if refused else said


def _reason(lines: list[str], status: str) -> str:
    end = len(lines)
    for i, line in enumerate(lines):
        if _EXIT.match(line):
            end = i
    window = [l.strip() for l in lines[:end]]
    # The message is what the last commands said (a `set -e` case stops at the check that
    # failed; a pipeline's or assignment's trace can come after its error): at most
    # MESSAGE_REACH traced commands back, and never one a `|| :` or `|| true` tolerated
    # (`rmmod x ||:`'s complaint, then the case goes on to fail elsewhere).
    traced = 0
    for line in reversed(window):
        if line.startswith("+ "):
            traced += 1
            if line in ("+ :", "+ true") or traced > MESSAGE_REACH:
                break
        elif line and not line.startswith(("[...", "execute")) and len(line) > 8:
            return line[:200]
    traced = [l[2:] for l in window if l.startswith("+ ")][-2:]
    if traced:
        verb = "failed at" if status == "FAIL" else "gave up after"
        return f"{verb}: {' ; '.join(traced)}"[:200]
    return status
