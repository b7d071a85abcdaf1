"""kernel/treeview.py for real: two trees at different paths (one a git worktree) are each
seen at the view's paths, git inside finds the right HEAD, what a build writes lands in
that tree's build dir, nothing changes outside the namespace, and a compile through
ccache in the second tree hits what the first tree's compile stored."""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from conftest import git
from orchestrator.kernel import build, treeview

pytestmark = pytest.mark.skipif(treeview.unshare_prefix() is None,
                                reason="this host allows no private mount namespace (unshare)")


@pytest.fixture
def trees(tmp_path):
    """A tree at commit `base`, its worktree at `series`, each with an empty build dir."""
    tree, wt = tmp_path / "home/linux", tmp_path / "elsewhere/linux-2"
    tree.mkdir(parents=True)
    git(tree, "init", "-q")
    (tree / "include").mkdir()
    (tree / "include" / "k.h").write_text("#define K 42\n")
    (tree / "file.c").write_text('#include "k.h"\nint k(void) { return K; }\n')
    git(tree, "add", ".")
    git(tree, "commit", "-qm", "base")
    git(tree, "worktree", "add", "-q", "--detach", str(wt), "HEAD")
    git(wt, "commit", "-q", "--allow-empty", "-m", "series")
    views = []
    for t, name in ((tree, "linux"), (wt, "linux-2")):
        b = tmp_path / "cache/build" / name / "x86_64-view"
        b.mkdir(parents=True)
        views.append(treeview.TreeView.under(tmp_path / "cache", t, b))
    return views


def _in_view(view, script: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(view.wrap(["sh", "-c", script]), capture_output=True, text=True,
                          env={"T": str(view.seen_tree), "PATH": "/usr/bin:/bin", **(env or {})})


def test_each_tree_is_seen_at_the_same_paths(trees):
    for view, subject in zip(trees, ("base", "series")):
        got = _in_view(view, 'pwd; git -C "$T" log -1 --format=%s; echo made > out.o')
        assert got.returncode == 0, got.stderr
        assert got.stdout.splitlines() == [str(view.seen_build), subject]
        assert (view.build_dir / "out.o").read_text() == "made\n"
    # Outside: the seen paths are empty mount points, each build dir holds its own file.
    assert list(trees[0].seen_tree.iterdir()) == [] and list(trees[0].seen_build.iterdir()) == []
    assert trees[0].seen_tree == trees[1].seen_tree


def test_the_second_trees_compile_hits_the_first_trees_ccache_entry(trees, tmp_path):
    env = build.make_environment(tmp_path / "cache")
    compile_ = 'ccache gcc -c "$T/file.c" -I"$T/include" -o file.o'
    stats = []
    for view in trees:
        got = _in_view(view, compile_, {k: env[k] for k in ("CCACHE_DIR", "CCACHE_NOHASHDIR")})
        assert got.returncode == 0, got.stderr
        out = subprocess.run(["ccache", "--print-stats"], env=env, capture_output=True, text=True).stdout
        stats.append({k: int(v) for k, v in re.findall(r"^(\w+)\t(\d+)$", out, re.M)})
    hits = lambda s: s.get("direct_cache_hit", 0) + s.get("preprocessed_cache_hit", 0)
    assert hits(stats[0]) == 0 and hits(stats[1]) == 1
    assert (trees[1].build_dir / "file.o").read_bytes() == (trees[0].build_dir / "file.o").read_bytes()


def test_paths_the_build_leaves_are_turned_back_into_the_trees(trees):
    view = trees[0]
    assert view.to_real(f"{view.seen_tree}/file.c:2:1: warning: x\n  LD  {view.seen_build}/vmlinux") == \
        f"{view.tree}/file.c:2:1: warning: x\n  LD  {view.build_dir}/vmlinux"
    assert view.to_real("file.c: no path here") == "file.c: no path here"
    got = _in_view(view, 'ln -s "$T" source && mkdir -p scripts/gdb && '
                         'ln -s "$T/scripts/gdb/vmlinux-gdb.py" vmlinux-gdb.py && ln -s ../own scripts/gdb/rel')
    assert got.returncode == 0, got.stderr
    assert view.repoint_links() == 2
    assert os.readlink(view.build_dir / "source") == str(view.tree)
    assert os.readlink(view.build_dir / "vmlinux-gdb.py") == f"{view.tree}/scripts/gdb/vmlinux-gdb.py"
    assert os.readlink(view.build_dir / "scripts/gdb/rel") == "../own"     # not into the view: kept


def test_a_stamp_record_gives_the_same_view(trees):
    assert treeview.TreeView.from_record(trees[1].as_record()) == trees[1]
    assert treeview.TreeView.from_record({"tree": "/x"}) is None
