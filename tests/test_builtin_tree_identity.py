"""A built-in tree (Debian's tarball as a git repo in the cache) is known by what is in
it: an edit or a new file inside the cache's copy makes it another tree, so no build or
base run of the shipped tree is reused for it."""
import pathlib
import subprocess

from orchestrator.kernel import source


def _tarball(tmp_path: pathlib.Path) -> pathlib.Path:
    top = tmp_path / "src" / "linux-source-9.9"
    (top / "kernel" / "trace").mkdir(parents=True)
    (top / "Makefile").write_text("VERSION = 9\nPATCHLEVEL = 9\nSUBLEVEL = 0\nEXTRAVERSION =\n")
    (top / "kernel" / "trace" / "trace_probe.c").write_text("int x;\n")
    (top / ".gitignore").write_text("/*\n")   # as Debian's tarball has it
    tarball = tmp_path / "linux-source-9.9.tar.xz"
    subprocess.run(["tar", "-cJf", str(tarball), "-C", str(tmp_path / "src"), "linux-source-9.9"], check=True)
    return tarball


def test_an_edit_or_a_new_file_in_the_cache_s_copy_is_another_tree(tmp_path):
    tarball, cache = _tarball(tmp_path), tmp_path / "cache"
    shipped = source._tarball_tree(tarball, "linux-source-9.9", cache, say=lambda *_: None)
    assert shipped.tree_id.startswith("git:") and "+dirty" not in shipped.tree_id
    assert source._tarball_tree(tarball, "linux-source-9.9", cache, say=lambda *_: None).tree_id == shipped.tree_id

    probe = shipped.path / "kernel" / "trace" / "trace_probe.c"
    probe.write_text("int x = 1;\n")
    edited = source._tarball_tree(tarball, "linux-source-9.9", cache, say=lambda *_: None).tree_id
    assert edited != shipped.tree_id and "+dirty:" in edited

    (shipped.path / "kernel" / "trace" / "new.c").write_text("int y;\n")
    added = source._tarball_tree(tarball, "linux-source-9.9", cache, say=lambda *_: None).tree_id
    assert added not in (edited, shipped.tree_id)
