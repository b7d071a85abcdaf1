"""Compiler warnings of the files a series touches, for the base and the series alike.

An incremental build's log only shows the files it happened to recompile, so the log
cannot say whether the base had a warning too. Instead each touched .c file is compiled
again with kbuild's own command for it (from its .cmd file) into /dev/null: the build's
outputs are left alone and both sides get the same treatment (ktest's patchcheck idea).
"""
from __future__ import annotations

import pathlib
import re
import shlex

from .. import cache, hosttools
from . import treeview
from .build import STAMP

_SAVED = re.compile(r"^savedcmd_\S+ := (.*)$", re.M)
_WARNING = re.compile(r"^(?P<file>[^\s:]+):(?P<line>\d+):(?:\d+:)? warning: (?P<msg>.*)$")


def _compile_argv(cmd_file: pathlib.Path) -> list[str] | None:
    try:
        m = _SAVED.search(cmd_file.read_text(errors="replace"))
    except OSError:
        return None
    if not m:
        return None
    # The saved command is "compile ; objtool ...": keep the compile, aim it at /dev/null,
    # and drop the dependency file it would otherwise rewrite.
    argv = shlex.split(m.group(1).split(" ; ")[0])
    out = []
    skip = False
    for a in argv:
        if skip:
            out.append("/dev/null")
            skip = False
        elif a == "-o":
            out.append(a)
            skip = True
        elif not a.startswith("-Wp,-MMD"):
            out.append(a)
    return out


def warnings_for(build_dir: pathlib.Path, files: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
    """{tree-relative .c file: ["line: message", ...]}. Headers and files this config
    does not build (no .cmd file) are left out."""
    out: dict[str, list[str]] = {}
    stamp = cache.read_json(build_dir / STAMP) or {}
    view = treeview.TreeView.from_record(stamp["view"]) if stamp.get("view") else None
    for rel in files:
        if not rel.endswith(".c"):
            continue
        obj = pathlib.Path(rel).with_suffix(".o")
        cmd_file = build_dir / obj.parent / f".{obj.name}.cmd"
        argv = _compile_argv(cmd_file)
        if argv is None:
            continue   # not part of this config's build
        if view is not None:   # its command names the tree's paths: run it where they hold
            argv = view.wrap(argv)
        proc = hosttools.run_tree(argv, cwd=build_dir, capture_output=True, text=True)
        found = []
        for line in proc.stderr.splitlines():
            m = _WARNING.match(line)
            if m and m.group("file").endswith(rel):
                found.append(f"{m.group('line')}: {m.group('msg')}")
        if proc.returncode != 0:
            found.append("error: " + next((l for l in proc.stderr.splitlines() if "error" in l),
                                          f"compiler exit {proc.returncode}"))
        out[rel] = found
    return out


def message_key(entry: str) -> str:
    """A warning without its line number: a series that moves code must not make every
    old warning look new."""
    return entry.split(": ", 1)[1] if ": " in entry else entry
