"""kernel/seed.py for real: a tree built by make, a worktree with a series that changes one
file, the worktree's first build seeded from the tree's build dir and run by make through
the tree view. make rebuilds the changed file's object and nothing else, and what it
builds is the series' content."""
from __future__ import annotations

import os
import subprocess
import time

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


def _make(view: treeview.TreeView | None, build_dir) -> str:
    argv = ["make", "-s", "-f", "Makefile"]
    p = subprocess.run(view.wrap(argv) if view else argv, cwd=build_dir, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    log = build_dir / "built.log"
    text = log.read_text() if log.exists() else ""
    log.unlink(missing_ok=True)
    return text


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
    tree_build = tmp_path / "build/tree/x86_64"
    tree_build.mkdir(parents=True)
    (tree_build / "Makefile").write_text(MAKEFILE.format(tree=tree))
    assert _make(None, tree_build).split() == ["a.o", "b.o", "vmlinux"]
    base_tree = git(tree, "rev-parse", "HEAD^{tree}")
    cache.atomic_write_json(tree_build / STAMP, {"tree_id": f"git:{base_tree}"})
    time.sleep(0.05)
    git(tree, "worktree", "add", "-q", "--detach", str(wt), "HEAD")
    (wt / "b.c").write_text("b.c series\n")
    git(wt, "commit", "-qam", "series")
    wt_build = tmp_path / "build/wt/x86_64-as-tree"
    wt_build.mkdir(parents=True)
    return treeview.TreeView(tree, wt, wt_build, tree_build, tmp_path / "views" / "git-tree",
                             treeview.worktree_name(wt))


def test_a_seeded_first_build_rebuilds_only_what_the_series_changed(built):
    view = built
    said = []
    assert seed.seed_from_tree(view, STAMP, LOCK, said.append)
    assert not (view.build_dir / STAMP).exists()     # the copy's stamp would lie about it
    assert (view.build_dir / "a.o").exists() and not (view.build_dir / "vmlinux").exists()   # relinked anyway
    assert "1 file(s) differ" in said[0]
    # The worktree checked out after the tree's build: every file newer than its objects,
    # but a.c now carries the tree's mtime, so only b.o and the link run.
    assert _make(view, view.build_dir).split() == ["b.o", "vmlinux"]
    assert (view.build_dir / "vmlinux").read_text() == "a.c base\nb.c series\n"
    # The tree's own build dir is as it was.
    assert (view.tree_build_dir / "vmlinux").read_text() == "a.c base\nb.c base\n"
    assert _make(None, view.tree_build_dir) == ""


def test_a_tree_file_edited_after_its_build_is_rebuilt_too(built):
    view = built
    later = time.time() + 5
    os.utime(view.tree / "a.c", (later, later))        # touched since the tree was built
    assert seed.seed_from_tree(view, STAMP, LOCK, lambda _: None)
    assert _make(view, view.build_dir).split() == ["a.o", "b.o", "vmlinux"]


def test_no_seed_from_a_dirty_or_unfinished_tree_build(built):
    view = built
    cache.atomic_write_json(view.tree_build_dir / STAMP, {"tree_id": "git:" + "0" * 40 + "+dirty:1234"})
    assert not seed.seed_from_tree(view, STAMP, LOCK, lambda _: None)
    assert list(view.build_dir.iterdir()) == []
    cache.atomic_write_json(view.tree_build_dir / STAMP, {"tree_id": "git:" + "0" * 40})
    (view.tree_build_dir / "vmlinux").unlink()
    assert not seed.seed_from_tree(view, STAMP, LOCK, lambda _: None)
