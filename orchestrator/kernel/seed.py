"""A worktree's first build starts from its tree's built dir, so it costs what the series
changed: the files it touches, what depends on them, and the link.

The tree view (treeview.py) makes every compile of that first build a ccache hit, but an
empty build dir still runs each of them, and objtool, BTF and the link on everything:
47 s against 20 s for rebuilding one touched file in the tree's dir (make bench). Here the
worktree's empty build dir becomes a copy of its tree's (timestamps kept), and every file
the series did not change gets the modification time the tree's own copy has: make then
sees what it would see in the tree after the series' edits, and its .cmd files compare
equal because every build sees its tree and build dir at the view's paths.

Only from a build of a clean checkout (its stamp's tree id is a git tree hash): `git diff`
between that tree and the worktree's HEAD then names every file that differs. A tree file
changed since that build carries a newer mtime, which the worktree's copy takes over, so
make rebuilds its objects: mirroring errs towards rebuilding, never towards a stale object.
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import time

from .. import hosttools
from .. import cache

_CLEAN_GIT_TREE = re.compile(r"git:([0-9a-f]{40}|[0-9a-f]{64})")
# The link's own products at the top of a build dir (x86_64 7.2: 830 MB of its 1.3 GB):
# a series that changes built code relinks them anyway, so they are not copied; one
# that changes none pays a link instead of the copy.
_LINK_PRODUCTS = re.compile(r"vmlinux(\.o|\.unstripped)?|\.tmp_vmlinux.*")


def _git(worktree: pathlib.Path, *args: str) -> list[str]:
    out = hosttools.run_tree(["git", "-C", str(worktree), *args], capture_output=True, check=True).stdout
    return [p.decode(errors="surrogateescape") for p in out.split(b"\0") if p]


def base_tree_hash(stamp: dict) -> str | None:
    """The git tree a build dir was built from, when it was a clean checkout."""
    m = _CLEAN_GIT_TREE.fullmatch(str(stamp.get("tree_id", "")))
    return m.group(1) if m else None


def mirror_mtimes(tree: pathlib.Path, worktree: pathlib.Path, base_tree: str) -> tuple[int, int]:
    """Give each worktree file the series left as in `base_tree` its tree copy's mtime;
    the others (changed, added, untracked) the time now. Returns (mirrored, changed)."""
    changed = set(_git(worktree, "diff", "--name-only", "-z", "--no-renames", base_tree, "HEAD"))
    changed.update(_git(worktree, "ls-files", "-z", "--others"))
    mirrored = 0
    for rel in _git(worktree, "ls-files", "-z"):
        if rel in changed:
            continue
        try:
            st = os.lstat(tree / rel)
            os.utime(worktree / rel, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
            mirrored += 1
        except OSError:
            changed.add(rel)   # gone from the tree: built as changed
    now = time.time_ns()
    for rel in changed:
        try:
            os.utime(worktree / rel, ns=(now, now), follow_symlinks=False)
        except OSError:
            pass               # deleted by the series: make sees it missing
    return mirrored, len(changed)


def seed_from_tree(twin: pathlib.Path, build_dir: pathlib.Path, tree: pathlib.Path, worktree: pathlib.Path,
                   stamp_name: str, lock_name: str, say) -> bool:
    """Copy `twin`, the build dir of `tree`, into the worktree's empty `build_dir` and mirror
    the source mtimes; False (nothing done) when `twin` is not a finished build of a clean
    checkout."""
    with cache.file_lock(twin.with_name(lock_name), f"build dir {twin}", on_wait=say):
        stamp = cache.read_json(twin / stamp_name) or {}
        base_tree = base_tree_hash(stamp)
        if base_tree is None or not (twin / "vmlinux").exists():
            return False
        t0 = time.monotonic()
        shutil.rmtree(build_dir, ignore_errors=True)
        build_dir.mkdir(parents=True)
        entries = [str(p) for p in twin.iterdir() if not _LINK_PRODUCTS.fullmatch(p.name)]
        # cp keeps the timestamps make compares and shares blocks where the filesystem can.
        cp = hosttools.run_tree(["cp", "-a", "--reflink=auto", "-t", str(build_dir), *entries],
                                capture_output=True, text=True)
    if cp.returncode:
        shutil.rmtree(build_dir, ignore_errors=True)
        say(f"build: could not copy {twin} as the worktree's first build dir ({cp.stderr.strip()[:200]}); "
            "building it in full")
        return False
    (build_dir / stamp_name).unlink(missing_ok=True)
    mirrored, changed = mirror_mtimes(tree, worktree, base_tree)
    say(f"build: the worktree's build dir starts as a copy of {twin} "
        f"({time.monotonic() - t0:.1f} s; {changed} file(s) differ from the tree it was built from, "
        f"{mirrored} keep its timestamps)")
    return True
