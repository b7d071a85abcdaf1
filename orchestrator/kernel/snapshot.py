"""A user's tree as it stands, copied into the cache where kbuild may build it.

kbuild refuses an out-of-tree (O=) build from a source tree that was configured or built
in place (a .config, include/config), and most developers' trees are: they build there
too. Such a tree is built from a snapshot instead: its tracked files as they are in the
work tree (uncommitted edits included) and its untracked files that git does not ignore
(a new .c file), never its own build output (.config, *.o, include/config: all ignored
by the kernel's .gitignore). A plain directory is read with the same .gitignore rules.

The snapshot is <cache>/snapshots/<tree slug>/, made once and then brought up to date
file by file (a file whose size or mtime differs is copied again, with its mtime, so
make rebuilds what changed and nothing else; a file gone from the tree goes). Nothing
is written into the user's tree or its .git: git only reads there (GIT_OPTIONAL_LOCKS=0,
and a plain directory's listing uses an empty repository in the cache).
"""
from __future__ import annotations

import os
import pathlib
import shutil
import stat
import subprocess
import time

from .. import hosttools
from .. import cache
from ..errors import ExitCode, OrchestratorError

GIT_TIMEOUT_SECONDS = 300


def configured_in_place(path: pathlib.Path) -> bool:
    """What makes kbuild refuse O= builds from the tree (its `prepare` check)."""
    return (path / ".config").exists() or (path / "include" / "config").is_dir()


def _in_tree_output(rel: str) -> bool:
    """What kbuild's clean-source check looks at: left out even where no .gitignore says
    so (a plain directory without the kernel's)."""
    parts = rel.split("/")
    return rel == ".config" or parts[:2] == ["include", "config"] or \
        (len(parts) > 3 and parts[0] == "arch" and parts[2:4] == ["include", "generated"])


def _listing(tree: pathlib.Path, cache_root: pathlib.Path, is_git: bool) -> list[str]:
    """The tree's files as kbuild should see them, relative to it."""
    from .source import GIT_READ_ONLY_ENV
    if is_git:
        argv = ["git", "-C", str(tree), "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    else:
        empty = cache_root / "snapshots" / ".empty.git"
        if not (empty / "HEAD").exists():
            hosttools.run_tree(["git", "init", "-q", "--bare", str(empty)], check=True, capture_output=True)
        argv = ["git", f"--git-dir={empty}", f"--work-tree={tree}", "ls-files", "-z", "--others",
                "--exclude-standard"]
    try:
        out = hosttools.run_tree(argv, capture_output=True, env=GIT_READ_ONLY_ENV, timeout=GIT_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise OrchestratorError(f"Cannot list the files of {tree} ({exc}); check that git works there.",
                                ExitCode.INFRA_ERROR) from exc
    if out.returncode != 0:
        raise OrchestratorError(f"git could not list the files of {tree}: "
                                f"{out.stderr.decode(errors='replace').strip()[-200:]}.", ExitCode.INFRA_ERROR)
    return sorted({rel for p in out.stdout.split(b"\0") if p and not _in_tree_output(rel := os.fsdecode(p))})


def _same(a: os.stat_result, b: os.stat_result) -> bool:
    return stat.S_IFMT(a.st_mode) == stat.S_IFMT(b.st_mode) and a.st_size == b.st_size \
        and a.st_mtime_ns == b.st_mtime_ns


def _sync(tree: pathlib.Path, dest: pathlib.Path, files: list[str]) -> tuple[int, int]:
    """dest made equal to tree over `files`; (copied, removed)."""
    wanted = set(files)
    removed = 0
    for root, dirs, names in os.walk(dest, topdown=False):
        for name in names:
            rel = os.path.relpath(os.path.join(root, name), dest)
            if rel not in wanted:
                os.unlink(os.path.join(root, name))
                removed += 1
        for name in dirs:
            full = os.path.join(root, name)
            if os.path.islink(full):   # a symlink to a directory is a file to git
                if os.path.relpath(full, dest) not in wanted:
                    os.unlink(full)
                    removed += 1
            elif not os.listdir(full):
                os.rmdir(full)
    copied = 0
    for rel in files:
        src, dst = tree / rel, dest / rel
        try:
            s = src.lstat()
        except FileNotFoundError:
            continue   # a tracked file deleted in the work tree: gone from the snapshot too
        if not (stat.S_ISREG(s.st_mode) or stat.S_ISLNK(s.st_mode)):
            continue   # a submodule's directory, a FIFO: nothing kbuild reads
        try:
            if _same(s, dst.lstat()):
                continue
            dst.unlink()
        except FileNotFoundError:
            dst.parent.mkdir(parents=True, exist_ok=True)
        if stat.S_ISLNK(s.st_mode):
            os.symlink(os.readlink(src), dst)
            os.utime(dst, ns=(s.st_atime_ns, s.st_mtime_ns), follow_symlinks=False)
        else:
            shutil.copy2(src, dst)
        copied += 1
    return copied, removed


def snapshot(tree: pathlib.Path, slug: str, cache_root: pathlib.Path, is_git: bool, why: str,
             say=print) -> pathlib.Path:
    """The tree's snapshot in the cache, up to date; its path. why: what makes the build
    need one, for the first time's message."""
    dest = cache_root / "snapshots" / slug
    t0 = time.monotonic()
    with cache.file_lock(dest.with_name(slug + ".lock"), f"the snapshot of {tree}", on_wait=say):
        files = _listing(tree, cache_root, is_git)
        first = not dest.exists()
        if first:
            say(f"source: {tree} {why}: building from a copy of its {len(files)} files in {dest} "
                "(made once; later runs copy what changed)")
        dest.mkdir(parents=True, exist_ok=True)
        try:
            copied, removed = _sync(tree, dest, files)
        except OSError as exc:
            raise cache.disk_error(pathlib.Path(exc.filename or dest), exc) from exc
        if not first and (copied or removed):
            say(f"source: snapshot of {tree}: {copied} file(s) copied, {removed} removed "
                f"({time.monotonic() - t0:.1f}s)")
    return dest
