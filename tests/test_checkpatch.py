"""checkpatch --strict per patch (series/checks.py): its report parsed (real output of 7.2's
checkpatch on a real test series), and the tree's own script run on the patches of a
series applied in a checkout (the 6.12 tarball's checkpatch.pl and its data files)."""
from __future__ import annotations

import pathlib

import pytest

from orchestrator.model import PatchCheck, SeriesInfo
from orchestrator.results import summary
from orchestrator.series import checks, patches as series_mod

from conftest import extract_from_tarball

DATA = pathlib.Path(__file__).parent / "data"


def test_the_report_becomes_counts_and_findings_with_their_file_and_line():
    total, errors, warnings, found, findings = checks.parse((DATA / "checkpatch-7.2-bugon.txt").read_text())
    assert (total, errors, warnings, found) == ("total: 1 errors, 2 warnings, 0 checks, 11 lines checked", 1, 2, 0)
    assert findings == [
        "WARNING:COMMIT_MESSAGE: Missing commit description - Add an appropriate one",
        "WARNING:AVOID_BUG kernel/trace/trace_kprobe.c:938: Do not crash the kernel unless it is absolutely "
        "unavoidable--use WARN_ON_ONCE() plus recovery code (if feasible) instead of BUG() or variants",
        "ERROR:MISSING_SIGN_OFF: Missing Signed-off-by: line(s)"]
    assert checks.parse("Must be run from the top-level dir. of a kernel tree\n")[0] == \
        "checkpatch gave no verdict: Must be run from the top-level dir. of a kernel tree"


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> pathlib.Path:
    """The real checkpatch.pl and its data files, in a directory with the top-level entries
    checkpatch looks for before it agrees it runs at the top of a kernel tree."""
    top = extract_from_tarball(tmp_path_factory.mktemp("cp"), *[f"linux-source-6.12/scripts/{f}" for f in
                               ("checkpatch.pl", "spelling.txt", "const_structs.checkpatch", "kernel-doc")])
    for name in ("COPYING", "CREDITS", "Kbuild", "MAINTAINERS", "Makefile", "README"):
        (top / name).touch()
    for name in ("Documentation", "arch", "include", "drivers", "fs", "init", "ipc", "kernel", "lib"):
        (top / name).mkdir()
    return top


def test_each_patch_of_a_series_goes_through_the_trees_checkpatch(checkout):
    clean = (b"From: A <a@example.org>\nSubject: [PATCH 1/2] tracing: Say what it does\n\n"
             b"It says what it does.\n\nSigned-off-by: A <a@example.org>\n---\n"
             b"diff --git a/kernel/trace/x.c b/kernel/trace/x.c\n--- a/kernel/trace/x.c\n+++ b/kernel/trace/x.c\n"
             b"@@ -1,1 +1,2 @@\n int x;\n+int y;\n")
    sloppy = (b"From: A <a@example.org>\nSubject: [PATCH 2/2] tracing: crash\n\n---\n"
              b"diff --git a/kernel/trace/x.c b/kernel/trace/x.c\n--- a/kernel/trace/x.c\n+++ b/kernel/trace/x.c\n"
              b"@@ -1,2 +1,3 @@\n int x;\n int y;\n+void f(void) { BUG(); }\n")
    ser = series_mod.Series("mbox", "v1.mbx", [
        series_mod.Patch(1, "[PATCH 1/2] tracing: Say what it does", "A <a@example.org>", None, ["kernel/trace/x.c"],
                         raw=clean),
        series_mod.Patch(2, "[PATCH 2/2] tracing: crash", "A <a@example.org>", None, ["kernel/trace/x.c"],
                         raw=sloppy)])
    said: list[str] = []
    found = checks.checkpatch(series_mod.AppliedSeries(ser, checkout, "a" * 40, "b" * 40), said.append)
    assert [c.number for c in found] == [1, 2]
    assert (found[0].errors, found[0].warnings) == (0, 0), found[0]
    assert found[1].errors >= 1 and any("MISSING_SIGN_OFF" in f for f in found[1].findings)
    assert any(f.startswith("WARNING:AVOID_BUG kernel/trace/x.c:3:") for f in found[1].findings), found[1].findings
    assert said[0].startswith("checkpatch --strict: ") and "patch 2: " in said[0] and "patch 1: " not in said[0]


def test_the_summary_tells_them_per_patch():
    info = SeriesInfo(kind="mbox", spec="v1.mbx", title="t", base_commit="a", tip_commit="b", worktree="w",
                      patches=[], checkpatch=[PatchCheck(number=1, subject="s", summary="total: 1 errors, 0 warnings, "
                                                         "0 checks, 3 lines checked", errors=1,
                                                         findings=["ERROR:MISSING_SIGN_OFF: Missing Signed-off-by"])])
    assert summary.checkpatch_lines(info.checkpatch, 2) == [
        "patch 1/2: total: 1 errors, 0 warnings, 0 checks, 3 lines checked",
        "  ERROR:MISSING_SIGN_OFF: Missing Signed-off-by"]


def test_the_kernel_doc_warnings_a_patch_adds(checkout, tmp_path):
    """The tree's kernel-doc on each touched file before and after the patch: a function
    whose doc misses a parameter the patch adds is told; a warning that was there before
    (moved by the patch to another line) is not."""
    import shutil
    from conftest import git
    repo = tmp_path / "linux"
    shutil.copytree(checkout, repo)
    src = repo / "kernel" / "x.c"
    src.write_text("/**\n * old() - older\n */\nint old(int a);\n")   # an old warning: 'a' undescribed
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    src.write_text("/* moved */\n\n/**\n * old() - older\n */\nint old(int a);\n\n"
                   "/**\n * new_one() - new\n * @a: the first\n */\nint new_one(int a, int b);\n")
    git(repo, "commit", "-qam", "add new_one")
    commit = git(repo, "rev-parse", "HEAD")
    patch = series_mod.Patch(1, "[PATCH] add new_one", "A <a@example.org>", None, ["kernel/x.c"], commit=commit)
    added = checks.kernel_doc_added(repo, patch)
    assert any(w.startswith("kernel/x.c:") and "'b' not described in 'new_one'" in w for w in added), added
    assert not any("'old'" in w for w in added), added
