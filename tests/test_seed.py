"""kernel/seed.py for real: a tree built by make through its tree view, a worktree with a
series that changes one file, the worktree's first build seeded from the tree's build dir
and run by make through its own view. make rebuilds the changed file's object and nothing
else, and what it builds is the series' content."""
from __future__ import annotations

import os
import subprocess
import time
import typing

import pytest

from conftest import git
from orchestrator import cache
from orchestrator.kernel import seed, treeview

pytestmark = pytest.mark.skipif(treeview.unshare_prefix() is None,
                                reason="this host allows no private mount namespace (unshare)")
STAMP, LOCK = "stamp.json", "x86_64.lock"
# Objects from the source tree by mtime, as kbuild's rules decide; a log of what ran.
MAKEFILE = """SRC := {tree}
all: a.o b.o vmlinux
%.o: $(SRC)/%.c
\tcp $< $@ && echo $@ >> built.log
vmlinux: a.o b.o
\tcat $^ > $@ && echo $@ >> built.log
"""


def _make(view: treeview.TreeView) -> str:
    p = subprocess.run(view.wrap(["make", "-s", "-f", "Makefile"]), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    log = view.build_dir / "built.log"
    text = log.read_text() if log.exists() else ""
    log.unlink(missing_ok=True)
    return text


class Built(typing.NamedTuple):
    tree: treeview.TreeView
    worktree: treeview.TreeView

    def seed(self, say=lambda _: None) -> bool:
        return seed.seed_from_tree(self.tree.build_dir, self.worktree.build_dir, self.tree.tree,
                                   self.worktree.tree, STAMP, LOCK, say)


@pytest.fixture
def built(tmp_path):
    """A tree at commit `base`, built in its build dir; its worktree one commit ahead."""
    tree, wt = tmp_path / "tree", tmp_path / "worktrees" / "tree-1"
    tree.mkdir()
    git(tree, "init", "-q")
    for name in ("a.c", "b.c"):
        (tree / name).write_text(f"{name} base\n")
    git(tree, "add", ".")
    git(tree, "commit", "-qm", "base")
    tree_build = tmp_path / "build/tree/x86_64-view"
    tree_build.mkdir(parents=True)
    tree_view = treeview.TreeView.under(tmp_path, tree, tree_build)
    (tree_build / "Makefile").write_text(MAKEFILE.format(tree=tree_view.seen_tree))
    assert _make(tree_view).split() == ["a.o", "b.o", "vmlinux"]
    base_tree = git(tree, "rev-parse", "HEAD^{tree}")
    cache.atomic_write_json(tree_build / STAMP, {"tree_id": f"git:{base_tree}"})
    time.sleep(0.05)
    git(tree, "worktree", "add", "-q", "--detach", str(wt), "HEAD")
    (wt / "b.c").write_text("b.c series\n")
    git(wt, "commit", "-qam", "series")
    wt_build = tmp_path / "build/wt/x86_64-view"
    wt_build.mkdir(parents=True)
    return Built(tree_view, treeview.TreeView.under(tmp_path, wt, wt_build))


def test_a_seeded_first_build_rebuilds_only_what_the_series_changed(built):
    wt = built.worktree
    said = []
    assert built.seed(said.append)
    assert not (wt.build_dir / STAMP).exists()     # the copy's stamp would lie about it
    assert (wt.build_dir / "a.o").exists() and not (wt.build_dir / "vmlinux").exists()   # relinked anyway
    assert "1 file(s) differ" in said[0]
    # The worktree checked out after the tree's build: every file newer than its objects,
    # but a.c now carries the tree's mtime, so only b.o and the link run.
    assert _make(wt).split() == ["b.o", "vmlinux"]
    assert (wt.build_dir / "vmlinux").read_text() == "a.c base\nb.c series\n"
    # The tree's own build dir is as it was.
    assert (built.tree.build_dir / "vmlinux").read_text() == "a.c base\nb.c base\n"
    assert _make(built.tree) == ""


def test_a_tree_file_edited_after_its_build_is_rebuilt_too(built):
    later = time.time() + 5
    os.utime(built.tree.tree / "a.c", (later, later))        # touched since the tree was built
    assert built.seed()
    assert _make(built.worktree).split() == ["a.o", "b.o", "vmlinux"]


def test_no_seed_from_a_dirty_or_unfinished_tree_build(built):
    tree_build = built.tree.build_dir
    cache.atomic_write_json(tree_build / STAMP, {"tree_id": "git:" + "0" * 40 + "+dirty:1234"})
    assert not built.seed()
    assert list(built.worktree.build_dir.iterdir()) == []
    cache.atomic_write_json(tree_build / STAMP, {"tree_id": "git:" + "0" * 40})
    (tree_build / "vmlinux").unlink()
    assert not built.seed()
