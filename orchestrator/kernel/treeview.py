"""A series worktree built as if it were its tree, so its first build costs the files the
series touches, not a cold build.

The compiler command lines of an out-of-tree kbuild carry the tree's absolute path
(`-I/…/include`, `-fmacro-prefix-map=/…/=`, the source file), so a worktree elsewhere
misses every ccache entry its tree's build made. Here make runs in a private mount
namespace (`unshare --mount`; `--user --map-root-user` when not root) where the worktree
is bind-mounted over the tree's path and the worktree's build dir over the tree's build
dir: every path the compiler sees is the tree's, and ccache hits on every file the series
did not change. Nothing changes outside the namespace, for this or any other process.
The tree's git dir is bound to a view of its own first, so `git` inside (kbuild's
setlocalversion) still finds the worktree's HEAD.

A build dir made this way holds the tree's paths in its .cmd files, so it is only ever
built this way again (its own name, build.build_dir_for); where namespaces are not
allowed the worktree builds at its own paths, as before.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import subprocess

# $1 tree, $2 worktree, $3 worktree build dir, $4 tree build dir, $5 git view, $6 worktree name.
# A constant script: every path reaches it as an argument, never inside the text.
_SCRIPT = """set -e
mount --bind "$1/.git" "$5"
mount --bind "$2" "$1"
mount --bind "$3" "$4"
export GIT_DIR="$5/worktrees/$6" GIT_WORK_TREE="$1"
cd "$4"
shift 6
exec "$@"
"""


@dataclasses.dataclass(frozen=True)
class TreeView:
    tree: pathlib.Path           # what the worktree is seen as
    worktree: pathlib.Path
    build_dir: pathlib.Path      # the worktree's own build dir (where the files land)
    tree_build_dir: pathlib.Path  # the path it is seen at: the tree's build dir
    git_view: pathlib.Path       # an empty dir the tree's .git is bound to
    worktree_name: str           # its name under .git/worktrees

    def as_record(self) -> dict[str, str]:
        """For the build dir's stamp: what later commands in that dir (buildwarn) run in."""
        return {k: str(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_record(cls, rec: dict) -> "TreeView | None":
        try:
            return cls(*(pathlib.Path(rec[k]) for k in ("tree", "worktree", "build_dir", "tree_build_dir",
                                                        "git_view")), str(rec["worktree_name"]))
        except (KeyError, TypeError):
            return None

    def wrap(self, argv: list[str]) -> list[str]:
        """argv run in the view, from the tree's build dir (make -C / O= give the tree's paths)."""
        prefix = unshare_prefix()
        assert prefix is not None
        for d in (self.tree_build_dir, self.git_view):
            d.mkdir(parents=True, exist_ok=True)
        return [*prefix, "sh", "-c", _SCRIPT, "treeview", str(self.tree), str(self.worktree),
                str(self.build_dir), str(self.tree_build_dir), str(self.git_view), self.worktree_name, *argv]


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


def worktree_name(worktree: pathlib.Path) -> str | None:
    """Its name under the tree's .git/worktrees, from the .git file git writes there."""
    try:
        text = (worktree / ".git").read_text()
    except OSError:
        return None
    if not text.startswith("gitdir:"):
        return None
    gitdir = pathlib.PurePath(text.split(":", 1)[1].strip())
    return gitdir.name if gitdir.parent.name == "worktrees" else None
