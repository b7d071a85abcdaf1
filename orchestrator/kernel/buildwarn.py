"""Compiler warnings of the files a series touches, at W=1, for the base and the series alike.

An incremental build's log only shows the files it happened to recompile, so the log
cannot say whether the base had a warning too. Instead each touched .c file this config
builds is compiled again by kbuild itself, as the single target `dir/file.s` with `W=1`
(the extra warnings netdev's patch CI and the 0-day bot report: unused variables,
missing prototypes, set-but-unused...), in the side's own build dir: both sides get the
same treatment, and the objects the build made are left alone (ktest's patchcheck idea).
Kbuild compiles a few prepare files again for the new flags (bounds.s, asm-offsets.s);
the next build does them again, and what they generate is unchanged, so nothing else is.
"""
from __future__ import annotations

import pathlib
import re

from ..arches import Arch
from .build import single_targets

# The W= level the warnings are compiled at (RunRecord.build_warnings_level).
LEVEL = 1
_WARNING = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+):(?:\d+:)? warning: (?P<msg>.*)$")
_ERROR = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+):(?:\d+:)? error: (?P<msg>.*)$")


def _built(build_dir: pathlib.Path, rel: str) -> bool:
    """Whether this config builds the file (kbuild left a .o.cmd for it)."""
    obj = pathlib.Path(rel).with_suffix(".o")
    return (build_dir / obj.parent / f".{obj.name}.cmd").is_file()


def warnings_for(build_dir: pathlib.Path, arch: Arch, cache_root: pathlib.Path,
                 files: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    """{tree-relative .c file: ["line: message", ...]}. Headers and files this config
    does not build are left out; a file that does not compile gets an "error: ..." entry."""
    wanted = [rel for rel in files if rel.endswith(".c") and _built(build_dir, rel)]
    if not wanted:
        return {}
    targets = [rel[:-2] + ".s" for rel in wanted]
    proc = single_targets(build_dir, arch, cache_root, targets, f"W={LEVEL}")
    out: dict[str, list[str]] = {rel: [] for rel in wanted}
    for rel in wanted:   # the assembler output is not wanted, only the compiler's words
        s = build_dir / (rel[:-2] + ".s")
        s.unlink(missing_ok=True)
        s.with_name(f".{s.name}.cmd").unlink(missing_ok=True)
    if proc is None:
        return {rel: ["error: the W=1 compile did not run (no build of record, or it ran out of time)"]
                for rel in wanted}
    for line in proc.stderr.splitlines():
        for pattern, prefix in ((_WARNING, ""), (_ERROR, "error: ")):
            m = pattern.match(line)
            rel = next((r for r in wanted if m and (m["file"] == r or m["file"].endswith("/" + r))), None)
            if rel is not None:
                out[rel].append(f"{m.group('line')}: {prefix}{m.group('msg')}")
    return out


def message_key(entry: str) -> str:
    """A warning without its line number: a series that moves code must not make every
    old warning look new."""
    return entry.split(": ", 1)[1] if ": " in entry else entry
