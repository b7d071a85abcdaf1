"""A user's tree configured in place is built from a snapshot in the cache
(kernel/snapshot.py), on a small git tree of real kernel files configured and built the
way a developer's is: a .config and include/config, object files, an uncommitted edit,
a new untracked .c file, a deleted tracked file. The snapshot holds the tree as kbuild
should see it; the user's tree and its .git are not written."""
from __future__ import annotations

import os
import pathlib
import subprocess

import pytest

from orchestrator.kernel import source

from conftest import extract_from_tarball, git

FILES = ["kernel/trace/trace_kprobe.c", "kernel/trace/trace_probe.c", "Makefile", "Kconfig",
         ".gitignore", "kernel/trace/Makefile"]


@pytest.fixture(scope="module")
def kernel_files(tmp_path_factory) -> pathlib.Path:
    return extract_from_tarball(tmp_path_factory.mktemp("kfiles"), *[f"linux-source-6.12/{f}" for f in FILES])


def _state(path: pathlib.Path) -> dict[str, tuple[int, int]]:
    """Every file under path (its .git too) with size and mtime: what "not written" means."""
    out = {}
    for root, _, names in os.walk(path):
        for n in names:
            st = os.lstat(os.path.join(root, n))
            out[os.path.relpath(os.path.join(root, n), path)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def configured(kernel_files, tmp_path) -> pathlib.Path:
    r = tmp_path / "linux"
    subprocess.run(["cp", "-a", str(kernel_files), str(r)], check=True)
    (r / "arch").mkdir()
    (r / "arch" / "Kconfig").write_text("# arch\n")
    # The kernel's own .gitignore, without the block Debian's tarball adds (it ignores
    # every top-level entry, being no git tree of its own).
    ignore = (r / ".gitignore").read_text()
    (r / ".gitignore").write_text(ignore[:ignore.index("# Debian packaging")])
    git(r, "init", "-q", "-b", "master")
    git(r, "add", "-A")
    git(r, "commit", "-qm", "base")
    # As `make defconfig && make` in place leaves it, and a developer's work in progress.
    (r / ".config").write_text("CONFIG_KPROBE_EVENTS=y\n")
    (r / "include" / "config").mkdir(parents=True)
    (r / "include" / "config" / "auto.conf").write_text("CONFIG_KPROBE_EVENTS=y\n")
    (r / "kernel" / "trace" / "trace_kprobe.o").write_bytes(b"\x7fELF")
    with open(r / "kernel" / "trace" / "trace_probe.c", "a") as f:
        f.write("/* work in progress */\n")
    (r / "kernel" / "trace" / "trace_new.c").write_text("int new_thing;\n")
    (r / "kernel" / "trace" / "Makefile").unlink()
    return r


def test_a_configured_tree_is_built_from_its_snapshot(configured, tmp_path):
    before = _state(configured)
    cache = tmp_path / "cache"
    tree = source.buildable(source.user_tree(str(configured)), cache, say=lambda m: None)
    snap = tree.snapshot
    assert snap is not None and snap.is_relative_to(cache) and tree.source == snap
    assert tree.path == configured and tree.tree_id.startswith("git:") and "+dirty" in tree.tree_id
    held = {str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file()}
    # Tracked and untracked-not-ignored files as they are; no build output, no deleted file.
    assert {"Makefile", "kernel/trace/trace_kprobe.c", "kernel/trace/trace_new.c"} <= held
    assert not held & {".config", "include/config/auto.conf", "kernel/trace/trace_kprobe.o", "kernel/trace/Makefile"}
    assert (snap / "kernel/trace/trace_probe.c").read_text().endswith("/* work in progress */\n")
    assert (snap / "Makefile").stat().st_mtime_ns == (configured / "Makefile").stat().st_mtime_ns
    assert not source.snapshot.configured_in_place(snap)
    assert _state(configured) == before        # nothing written in the tree or its .git


def test_the_snapshot_follows_the_tree(configured, tmp_path):
    cache = tmp_path / "cache"
    said: list[str] = []
    first = source.buildable(source.user_tree(str(configured)), cache, say=said.append)
    assert any("is configured in place" in m for m in said)
    kept = (first.snapshot / "Makefile").stat().st_ino
    (configured / "kernel" / "trace" / "trace_new.c").unlink()
    (configured / "kernel" / "trace" / "trace_probe.c").write_text("/* rewritten */\n")
    said.clear()
    again = source.buildable(source.user_tree(str(configured)), cache, say=said.append)
    assert again.snapshot == first.snapshot and again.tree_id != first.tree_id
    assert not (again.snapshot / "kernel/trace/trace_new.c").exists()
    assert (again.snapshot / "kernel/trace/trace_probe.c").read_text() == "/* rewritten */\n"
    assert (again.snapshot / "Makefile").stat().st_ino == kept        # unchanged: not copied again
    assert said == [m for m in said if "1 file(s) copied, 1 removed" in m] and said


def test_a_plain_directory_is_read_with_the_trees_own_ignore_rules(configured, tmp_path):
    import shutil
    shutil.rmtree(configured / ".git")
    tree = source.buildable(source.user_tree(str(configured)), tmp_path / "cache", say=lambda m: None)
    held = {str(p.relative_to(tree.snapshot)) for p in tree.snapshot.rglob("*") if p.is_file()}
    assert "kernel/trace/trace_new.c" in held and "kernel/trace/trace_kprobe.o" not in held
    assert ".config" not in held and tree.tree_id.startswith("plain:")


def test_a_clean_tree_is_built_where_it_is_unless_the_build_writes_beside_it(configured, tmp_path):
    (configured / ".config").unlink()
    import shutil
    shutil.rmtree(configured / "include")
    tree = source.buildable(source.user_tree(str(configured)), tmp_path / "cache")
    assert tree.snapshot is None and tree.source == configured
    assert not (tmp_path / "cache" / "snapshots").exists()
    said: list[str] = []
    dtb = source.buildable(tree, tmp_path / "cache", "loongarch64's device tree", say=said.append)
    assert dtb.snapshot is not None and dtb.path == configured
    assert "is built with loongarch64's device tree written beside its sources" in said[0]


def test_a_tree_in_the_cache_is_never_copied(tmp_path):
    """The built-in trees and series checkouts live in the cache: the build may write there."""
    cached = source.KernelTree(path=tmp_path, tree_id="git:x", version="7.2", origin="Debian", git_commit="c")
    (tmp_path / ".config").write_text("")
    assert source.buildable(cached, tmp_path / "cache", "a device tree") is cached
    assert not (tmp_path / "cache").exists()
