"""Whose splat is it: a splat whose location (a WARN's or BUG's file:line) or one of its
decoded stack frames lies in a line the series changed is the series', whatever its rate,
and it is charged to the patch that last changed that line. A compiler warning the series
adds is charged the same way, to the patch of its line.

`git blame` over base..tip in the series worktree (a cache-side clone, never the user's
tree) names the commit of each line; a line older than the base blames the boundary.
"""
from __future__ import annotations

import pathlib
import subprocess

from .. import hosttools
from ..model import AddedWarning, Attribution, Patch, Splat
from ..suites.splats import splat_key

# Lines looked at per splat: its location, then its frames in stack order (the inlined
# chain of each included); past the first few frames a stack is the syscall path.
MAX_LINES_PER_SPLAT = 12
GIT_TIMEOUT_SECONDS = 60


def splat_lines(splat: Splat) -> list[tuple[str, int, str]]:
    """(file, line, what) for the splat's location and decoded frames, in order."""
    out: list[tuple[str, int, str]] = []
    if splat.location:
        out.append((splat.location.file, splat.location.line, "location"))
    for frame in splat.frames or []:
        for place in [frame, *frame.inlined_by]:
            if place.file and place.line:
                out.append((place.file, place.line, frame.frame))
    seen: set[tuple[str, int]] = set()
    unique = []
    for f, n, what in out:
        if (f, n) not in seen:
            seen.add((f, n))
            unique.append((f, n, what))
    return unique[:MAX_LINES_PER_SPLAT]


def _blame(repo: pathlib.Path, base: str, tip: str, path: str, line: int) -> str | None:
    """The commit that last changed the line within base..tip; None for an older line
    (or a file or line git does not know at the tip)."""
    try:
        out = hosttools.run_tree(["git", "-C", str(repo), "blame", "--porcelain", "-L", f"{line},{line}",
                              f"{base}..{tip}", "--", path], capture_output=True, text=True,
                                 timeout=GIT_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0 or not out.stdout:
        return None
    lines = out.stdout.splitlines()
    if any(l == "boundary" for l in lines[1:12]):
        return None
    return lines[0].split()[0]


def attribute(splats: list[Splat], repo: pathlib.Path, base_commit: str, tip_commit: str,
              patches: list[Patch]) -> dict[str, Attribution]:
    """splat key -> the patch, file, line (and frame) for each splat with a line the
    series changed (the first such line, in stack order). patches: the applied series'."""
    by_commit = {p.commit: p for p in patches if p.commit}
    out: dict[str, Attribution] = {}
    for splat in splats:
        key = splat_key(splat)
        if key in out:
            continue
        for path, line, what in splat_lines(splat):
            commit = _blame(repo, base_commit, tip_commit, path, line)
            patch = by_commit.get(commit or "")
            if patch is not None:
                out[key] = Attribution(patch=patch.number, patches=len(patches), subject=patch.subject,
                                       commit=commit, file=path, line=line,
                                       frame="" if what == "location" else what)
                break
    return out


def warnings(added: list[AddedWarning], repo: pathlib.Path, base_commit: str, tip_commit: str,
             patches: list[Patch]) -> None:
    """Each added warning's patch: the one that last changed its line (left None for a
    line older than the series: a warning the series' other lines brought out)."""
    by_commit = {p.commit: p.number for p in patches if p.commit}
    for w in added:
        w.patch = by_commit.get(_blame(repo, base_commit, tip_commit, w.file, w.line) or "")
