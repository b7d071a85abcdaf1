"""kernel/treeview.py for real, on a small git repository and its worktree: a command in
the view sees the worktree at the tree's path and the worktree's build dir at the tree's
build dir path, git inside finds the worktree's HEAD, what it writes lands in the
worktree's build dir, and nothing changes outside the namespace."""
from __future__ import annotations

import subprocess

import pytest

from conftest import git
from orchestrator.kernel import treeview

pytestmark = pytest.mark.skipif(treeview.unshare_prefix() is None,
                                reason="this host allows no private mount namespace (unshare)")


@pytest.fixture
def view(tmp_path) -> treeview.TreeView:
    tree, wt = tmp_path / "tree", tmp_path / "worktrees" / "tree-1"
    tree.mkdir()
    git(tree, "init", "-q")
    (tree / "file.c").write_text("base\n")
    git(tree, "add", "file.c")
    git(tree, "commit", "-qm", "base")
    git(tree, "worktree", "add", "-q", "--detach", str(wt), "HEAD")
    (wt / "file.c").write_text("series\n")
    git(wt, "commit", "-qam", "series")
    for d in ("build/tree/x86_64", "build/wt/x86_64-as-tree"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "build/tree/x86_64/base.o").write_text("the tree's own build\n")
    return treeview.TreeView(tree, wt, tmp_path / "build/wt/x86_64-as-tree", tmp_path / "build/tree/x86_64",
                             tmp_path / "views" / "git-tree", treeview.worktree_name(wt))


def test_the_worktree_is_seen_at_the_trees_paths(view):
    script = ('pwd; cat "$T/file.c"; git -C "$T" log -1 --format=%s; ls; echo made > out.o')
    got = subprocess.run(view.wrap(["sh", "-c", script]), capture_output=True, text=True,
                         env={"T": str(view.tree), "PATH": "/usr/bin:/bin"})
    assert got.returncode == 0, got.stderr
    pwd, content, subject, *listing = got.stdout.splitlines()
    assert pwd == str(view.tree_build_dir)
    assert content == "series" and subject == "series"
    assert "base.o" not in listing            # the tree's build dir is covered, not used
    assert (view.build_dir / "out.o").read_text() == "made\n"
    # Outside: the tree, its build dir and its git are as they were.
    assert (view.tree / "file.c").read_text() == "base\n"
    assert not (view.tree_build_dir / "out.o").exists()
    assert git(view.tree, "log", "-1", "--format=%s") == "base"


def test_the_worktree_name_comes_from_its_git_file(view, tmp_path):
    assert view.worktree_name == "tree-1"
    assert treeview.worktree_name(view.tree) is None      # the tree itself: a .git dir
    assert treeview.worktree_name(tmp_path / "nowhere") is None


def test_a_stamp_record_gives_the_same_view(view):
    assert treeview.TreeView.from_record(view.as_record()) == view
    assert treeview.TreeView.from_record({"tree": "/x"}) is None
