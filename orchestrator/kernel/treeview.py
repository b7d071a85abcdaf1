"""Every kernel tree built at the same two paths, so the compiler cache carries across trees.

The compiler command lines of an out-of-tree kbuild carry the source tree's absolute path
(`-I/…/include`, the source file), so a build of one tree misses every ccache entry
another tree's build made, however few files differ: a series worktree, a second clone,
the built-in tree and a user's checkout of the same release. Here make runs in a private
mount namespace (`unshare --mount`; `--user --map-root-user` when not root) where the tree
is bind-mounted at <cache>/views/source and its build dir at <cache>/views/build: every
build sees the same paths, and ccache hits on every file whose content (and includes) did
not change. Nothing changes outside the namespace, for this or any other process, and two
builds at once each see their own tree there.

A build dir made this way holds the view's paths in its .cmd files, so it is only ever
built this way again (its own name, build.build_dir_for). Paths the build leaves behind
pointing into the view (the `source` and scripts/gdb symlinks) are turned back to the
tree's after each make (`repoint_links`); make's output is rewritten the same way before
anyone reads it (`to_real`). Where namespaces are not allowed every tree builds at its own
paths, as before.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import subprocess

# $1 tree, $2 its build dir, $3 and $4 where the view shows them.
# A constant script: every path reaches it as an argument, never inside the text.
_SCRIPT = """set -e
mount --bind "$1" "$3"
mount --bind "$2" "$4"
cd "$4"
shift 4
exec "$@"
"""


@dataclasses.dataclass(frozen=True)
class TreeView:
    tree: pathlib.Path          # the tree built (a user's, a series worktree, the cache's)
    build_dir: pathlib.Path     # its build dir (where the files land)
    seen_tree: pathlib.Path     # where every build sees its tree: <cache>/views/source
    seen_build: pathlib.Path    # and its build dir: <cache>/views/build

    @classmethod
    def under(cls, cache_root: pathlib.Path, tree: pathlib.Path, build_dir: pathlib.Path) -> "TreeView":
        views = cache_root / "views"
        return cls(tree, build_dir, views / "source", views / "build")

    def as_record(self) -> dict[str, str]:
        """For the build dir's stamp: what later commands in that dir (buildwarn, gdb) need."""
        return {k: str(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_record(cls, rec: dict) -> "TreeView | None":
        try:
            return cls(*(pathlib.Path(rec[k]) for k in ("tree", "build_dir", "seen_tree", "seen_build")))
        except (KeyError, TypeError):
            return None

    def wrap(self, argv: list[str]) -> list[str]:
        """argv run in the view, from the seen build dir (make -C / O= give the seen paths)."""
        prefix = unshare_prefix()
        assert prefix is not None
        for d in (self.seen_tree, self.seen_build):
            d.mkdir(parents=True, exist_ok=True)
        return [*prefix, "sh", "-c", _SCRIPT, "treeview", str(self.tree), str(self.build_dir),
                str(self.seen_tree), str(self.seen_build), *argv]

    def to_real(self, text: str) -> str:
        """make's output with the view's paths turned back into the tree's and the build dir's."""
        return text.replace(f"{self.seen_tree}/", f"{self.tree}/").replace(
            f"{self.seen_build}/", f"{self.build_dir}/")

    def repoint_links(self) -> int:
        """Symlinks in the build dir that point into the seen tree (kbuild's `source`,
        vmlinux-gdb.py and scripts/gdb/linux/*.py) point at the real tree again, so gdb and
        out-of-tree module builds find it from outside. Returns how many were changed."""
        seen, changed = str(self.seen_tree), 0
        for dirpath, dirs, files in os.walk(self.build_dir):
            for name in files + dirs:   # a link to a dir is listed among the dirs
                path = os.path.join(dirpath, name)
                if not os.path.islink(path):
                    continue
                target = os.readlink(path)
                if target == seen or target.startswith(seen + "/"):
                    tmp = path + ".repoint"
                    os.symlink(str(self.tree) + target[len(seen):], tmp)
                    os.replace(tmp, path)
                    changed += 1
        return changed


@functools.cache
def unshare_prefix() -> tuple[str, ...] | None:
    """How to enter a private mount namespace here, or None when this host allows none."""
    base = ("unshare", "--mount", "--propagation", "private")
    prefix = base if os.geteuid() == 0 else ("unshare", "--user", "--map-root-user", "--mount",
                                             "--propagation", "private")
    try:
        ok = subprocess.run([*prefix, "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return prefix if ok else None
