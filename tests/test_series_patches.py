"""Series input and application, on a small git repo holding real kernel files and real
patches made here by committing changes (git format-patch / mbox / directory / range)."""
from __future__ import annotations

import pathlib
import subprocess

import pytest

from orchestrator.series import patches as series
from orchestrator.kernel import source
from orchestrator.errors import ExitCode, OrchestratorError

from conftest import edit as _edit, extract_from_tarball, git

FILES = ["kernel/trace/bpf_trace.c", "kernel/trace/trace_probe.c",
         "tools/testing/selftests/ftrace/test.d/dynevent/add_remove_kprobe.tc"]
@pytest.fixture(scope="module")
def kernel_files(tmp_path_factory) -> pathlib.Path:
    return extract_from_tarball(tmp_path_factory.mktemp("kfiles"),
                                *[f"linux-source-6.12/{f}" for f in FILES + ["Makefile", "Kconfig"]])


@pytest.fixture
def repo(kernel_files, tmp_path) -> pathlib.Path:
    """A git tree with the real files; commits: base, then a 3-patch series on branch 'v2'."""
    r = tmp_path / "linux"
    subprocess.run(["cp", "-a", str(kernel_files), str(r)], check=True)
    (r / "arch").mkdir()
    git(r, "init", "-q", "-b", "master")
    git(r, "add", "-A")
    git(r, "commit", "-qm", "base")
    git(r, "checkout", "-q", "-b", "v2")
    _edit(r, FILES[1], "static int parse_btf_arg(char *varname,",
          "/* Resolve a BTF-named argument. */\nstatic int parse_btf_arg(char *varname,")
    git(r, "commit", "-qam", "tracing/probes: Say what parse_btf_arg() resolves")
    _edit(r, FILES[0], "cookie = link->cookies + (addr - link->addrs);", "cookie = link->cookies;")
    git(r, "commit", "-qam", "bpf: Simplify kprobe_multi cookie lookup")
    _edit(r, FILES[2], "! grep -q myevent2 dynamic_events\n",
          "! grep -q myevent2 dynamic_events\ntest -d events/kprobes/myevent2\n")
    git(r, "commit", "-qam", "selftests/ftrace: Check the event directory after removing a kretprobe")
    git(r, "checkout", "-q", "master")
    return r


@pytest.fixture
def mbox(repo, tmp_path) -> pathlib.Path:
    out = tmp_path / "v2.mbx"
    out.write_text(git(repo, "format-patch", "--cover-letter", "--thread", "--subject-prefix=PATCH v2",
                       "--stdout", "master..v2") + "\n")
    return out


def _tree(repo: pathlib.Path) -> source.KernelTree:
    return source.user_tree(str(repo))


def test_mbox_with_cover_letter(repo, mbox):
    s = series.load(str(mbox), repo)
    assert s.kind == "mbox"
    assert s.cover_subject == "[PATCH v2 0/3] *** SUBJECT HERE ***"
    assert [p.subject for p in s.patches] == [
        "[PATCH v2 1/3] tracing/probes: Say what parse_btf_arg() resolves",
        "[PATCH v2 2/3] bpf: Simplify kprobe_multi cookie lookup",
        "[PATCH v2 3/3] selftests/ftrace: Check the event directory after removing a kretprobe"]
    assert {p.author for p in s.patches} == {"Test Author <author@example.org>"}
    assert all(p.message_id and p.message_id.endswith("@example.org") for p in s.patches)
    assert [p.files for p in s.patches] == [[FILES[1]], [FILES[0]], [FILES[2]]]
    assert s.touched_files() == sorted(FILES)


def test_patch_ids_match_git(repo, mbox, tmp_path):
    s = series.load(str(mbox), repo)
    series.patch_ids(s, repo)
    commits = git(repo, "rev-list", "--reverse", "master..v2").split()
    want = [git(repo, "patch-id", "--stable", input=subprocess.run(
        ["git", "-C", str(repo), "show", c], capture_output=True).stdout).split()[0] for c in commits]
    assert [p.patch_id for p in s.patches] == want


def test_directory_of_patches_in_name_order(repo, tmp_path):
    d = tmp_path / "patches"
    git(repo, "format-patch", "-q", "--cover-letter", "-o", str(d), "master..v2")
    s = series.load(str(d), repo)
    assert s.kind == "directory" and len(s.patches) == 3
    assert s.patches[1].subject == "[PATCH 2/3] bpf: Simplify kprobe_multi cookie lookup"


def test_apply_mbox_in_a_worktree_gives_the_series_tree(repo, mbox, tmp_path):
    tree = _tree(repo)
    head_before, status_before = git(repo, "rev-parse", "HEAD"), git(repo, "status", "--porcelain")
    s = series.load(str(mbox), repo)
    base = series.resolve_base(tree, s, None)
    applied = series.apply(tree, s, base, tmp_path / "cache", "x86_64")
    assert applied.worktree.is_relative_to(tmp_path / "cache")
    # The content is exactly the series' (the commits differ: dates, committer).
    assert git(applied.worktree, "rev-parse", "HEAD^{tree}") == git(repo, "rev-parse", "v2^{tree}")
    assert [p.commit for p in s.patches] == git(applied.worktree, "rev-list", "--reverse", f"{base}..HEAD").split()
    assert applied.base_commit == head_before
    # The user's checkout is untouched.
    assert git(repo, "rev-parse", "HEAD") == head_before
    assert git(repo, "status", "--porcelain") == status_before
    # The worktree is reused for the next series, from a clean state.
    again = series.apply(tree, series.load(str(mbox), repo), base, tmp_path / "cache", "x86_64")
    assert again.worktree == applied.worktree


def test_range_on_its_base_tests_the_very_commits(repo, tmp_path):
    tree = _tree(repo)
    s = series.load("master..v2", repo)
    assert s.kind == "range" and len(s.patches) == 3 and s.patches[0].message_id is None
    applied = series.apply(tree, s, series.resolve_base(tree, s, None), tmp_path / "cache", "x86_64")
    assert applied.tip_commit == git(repo, "rev-parse", "v2")


def test_branch_with_base_and_bad_ranges(repo):
    s = series.load("v2", repo, base="master")
    assert len(s.patches) == 3 and s.base_rev == "master"
    with pytest.raises(series.SeriesError, match="no base; write it as base..tip"):
        series.load("v2", repo)
    with pytest.raises(series.SeriesError, match="holds no commits"):
        series.load("v2..master", repo)
    with pytest.raises(series.SeriesError, match="'nosuch' is not a commit"):
        series.load("nosuch..v2", repo)


def test_a_patch_that_does_not_apply_is_named(repo, mbox, tmp_path):
    # The base already changed the line patch 2 edits.
    _edit(repo, FILES[0], "cookie = link->cookies + (addr - link->addrs);",
          "cookie = &link->cookies[addr - link->addrs];")
    git(repo, "commit", "-qam", "bpf: index the cookie array")
    tree = _tree(repo)
    s = series.load(str(mbox), repo)
    with pytest.raises(series.SeriesDoesNotApply) as exc:
        series.apply(tree, s, series.resolve_base(tree, s, None), tmp_path / "cache", "x86_64")
    err = exc.value
    assert err.code == ExitCode.SERIES_DOES_NOT_APPLY
    assert err.patch.number == 2 and err.files == [FILES[0]]
    assert err.message.startswith("Patch 2/3 ([PATCH v2 2/3] bpf: Simplify kprobe_multi cookie lookup) "
                                  f"does not apply on the base: conflicts in {FILES[0]}")
    # Left for inspection: git am is stopped at that patch, patch 1 is applied.
    shown = subprocess.run(["git", "-C", str(err.worktree), "am", "--show-current-patch"],
                           capture_output=True, text=True)
    assert "Simplify kprobe_multi cookie lookup" in shown.stdout
    assert s.patches[0].commit is not None and s.patches[1].commit is None


def test_a_series_already_in_the_base(repo, mbox, tmp_path):
    tree = _tree(repo)
    s = series.load(str(mbox), repo)
    with pytest.raises(series.SeriesDoesNotApply, match="already in the base"):
        series.apply(tree, s, series.resolve_base(tree, s, "v2"), tmp_path / "cache", "x86_64")


@pytest.mark.parametrize("content,message", [
    (b"", "is empty"),
    (b"just some notes\nnothing to apply\n", "holds no diff and is no cover letter"),
    (b"From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n"
     b"Subject: [PATCH 0/2] cover only\n\nblurb\n", "holds no patch"),
])
def test_bad_series_files(tmp_path, content, message):
    f = tmp_path / "bad.mbx"
    f.write_bytes(content)
    with pytest.raises(OrchestratorError, match=message) as exc:
        series.load(str(f), None)
    assert exc.value.code == ExitCode.BAD_INPUT


def test_a_patch_escaping_the_tree_is_refused(repo, mbox, tmp_path):
    evil = mbox.read_text().replace(f"a/{FILES[0]}", "a/../../etc/passwd", 1)
    f = tmp_path / "evil.mbx"
    f.write_text(evil)
    with pytest.raises(series.SeriesError, match=r"touches '\.\./\.\./etc/passwd', a path outside the kernel tree"):
        series.load(str(f), repo)


def test_an_untracked_file_is_part_of_the_tree_identity(repo):
    # A new .c file the series' author has not added yet is built all the same: editing it
    # must change the identity (the build stamp), or make would never run.
    clean = _tree(repo).tree_id
    new = repo / "kernel/trace/trace_new.c"
    new.write_text("int x;\n")
    added = _tree(repo).tree_id
    assert added != clean and added.startswith(clean + "+dirty:")
    new.write_text("int x, y;\n")
    assert _tree(repo).tree_id not in (clean, added)
    new.unlink()
    assert _tree(repo).tree_id == clean
    # What the loongarch boot route writes into a tree is not the tree's content.
    (repo / "arch/orchestrator-qemu-virt.dts").parent.mkdir(exist_ok=True)
    (repo / "arch/orchestrator-qemu-virt.dts").write_text("/dts-v1/;\n")
    assert _tree(repo).tree_id == clean


@pytest.mark.parametrize("old,new", [
    ('"a/x y/../../../etc/passwd"', '"b/x y/../../../etc/passwd"'),            # git quotes names with spaces
    ("a/../../etc/passwd\t2026-12-01 10:00:00", "b/../../etc/passwd\t2026-12-01 10:00:00"),  # diff(1)'s dates
])
def test_a_quoted_or_dated_path_escaping_the_tree_is_refused(repo, mbox, tmp_path, old, new):
    evil = (mbox.read_text().replace(f"diff --git a/{FILES[0]} b/{FILES[0]}\n", "", 1)
            .replace(f"--- a/{FILES[0]}\n", f"--- {old}\n", 1).replace(f"+++ b/{FILES[0]}\n", f"+++ {new}\n", 1))
    f = tmp_path / "evil.mbx"
    f.write_text(evil)
    with pytest.raises(series.SeriesError, match=r"touches '(x y/)?\.\./\.\./(\.\./)?etc/passwd', a path outside"):
        series.load(str(f), repo)


def _git_dir_state(repo: pathlib.Path) -> dict[str, tuple[int, int | None]]:
    """Every file and dir under .git with its size and mtime (ns). Not the mtimes of the
    object files: git itself touches an object it finds in the borrowed store when the
    clone writes the same one (its "freshening" against pruning); no content changes."""
    objects = repo / ".git" / "objects"
    return {str(p.relative_to(repo)): (p.stat().st_size if p.is_file() else 0,
                                       None if p.is_relative_to(objects) else p.stat().st_mtime_ns)
            for p in [repo / ".git", *(repo / ".git").rglob("*")]}


def test_a_series_run_writes_nothing_into_the_users_repository(repo, mbox, tmp_path):
    """No worktree registered, no prune, no object, ref or index of ours in the user's .git;
    their uncommitted edit and untracked file stay as they were."""
    _edit(repo, FILES[1], "static int parse_btf_arg(char *varname,", "/* mine */\nstatic int parse_btf_arg(char *varname,")
    (repo / "notes.txt").write_text("untracked\n")
    git(repo, "worktree", "add", "-q", str(tmp_path / "their-worktree"), "v2")   # one of their own
    status = git(repo, "status", "--porcelain")
    before, worktrees = _git_dir_state(repo), git(repo, "worktree", "list", "--porcelain")
    tree = _tree(repo)
    s = series.load(str(mbox), repo)
    base = git(repo, "rev-parse", "master")
    for _ in range(2):   # made, then reused
        applied = series.apply(tree, s, base, tmp_path / "cache", "x86_64")
        series.worktree_tree(applied.worktree, "test")
        series.checkout(applied.worktree, applied.base_commit)
    assert _git_dir_state(repo) == before
    assert git(repo, "worktree", "list", "--porcelain") == worktrees
    assert git(repo, "status", "--porcelain") == status
    # Its commits are the checkout's own: the user's repo does not have them.
    assert subprocess.run(["git", "-C", str(repo), "cat-file", "-e", applied.tip_commit],
                          capture_output=True).returncode != 0


def test_a_checkout_an_earlier_version_made_as_a_git_worktree_is_replaced(repo, mbox, tmp_path):
    tree = _tree(repo)
    old = series.worktree_for(tree, tmp_path / "cache", "x86_64")
    old.parent.mkdir(parents=True)
    git(repo, "worktree", "add", "-q", "--detach", str(old), "master")
    applied = series.apply(tree, series.load(str(mbox), repo), git(repo, "rev-parse", "master"), tmp_path / "cache",
                           "x86_64")
    assert applied.worktree == old and (old / ".git").is_dir()
    assert git(applied.worktree, "rev-parse", "HEAD^{tree}") == git(repo, "rev-parse", "v2^{tree}")


def test_the_one_checkout_per_tree_of_earlier_versions_goes_with_its_build_dirs(repo, mbox, tmp_path):
    """Earlier versions kept one checkout per tree for every arch (worktrees/<tree>); each
    arch has its own now, and the old one and its build dirs are removed, not left to hold
    gigabytes of the cache."""
    from orchestrator.kernel.source import slug_for
    tree, cache_root, said = _tree(repo), tmp_path / "cache", []
    old = cache_root / "worktrees" / tree.slug
    old.parent.mkdir(parents=True)
    git(tmp_path, "clone", "-q", "--shared", str(repo), str(old))
    old_build = cache_root / "build" / slug_for(old) / "x86_64"
    old_build.mkdir(parents=True)
    other = cache_root / "worktrees" / "linux-other-12345678"    # another tree's: not touched
    other.mkdir()
    applied = series.apply(tree, series.load(str(mbox), repo), git(repo, "rev-parse", "master"), cache_root,
                           "arm64", say=said.append)
    assert applied.worktree == series.worktree_for(tree, cache_root, "arm64") != old
    assert not old.exists() and not old_build.parent.exists() and other.is_dir()
    assert said == [f"series: removing {old} and its build dirs (one checkout per arch now)"]


def test_the_base_a_series_names_is_its_base(repo, tmp_path):
    """git format-patch --base (and b4) write base-commit:; the tree's HEAD may be elsewhere."""
    base = git(repo, "rev-parse", "master")
    git(repo, "checkout", "-q", "v2")                      # the user's HEAD: the tip, not the base
    mbox = tmp_path / "based.mbx"
    mbox.write_text(git(repo, "format-patch", f"--base={base}", "--cover-letter", "--stdout", "master..v2") + "\n")
    s = series.load(str(mbox), repo)
    assert s.named_base == base
    assert series.resolve_base(_tree(repo), s, None) == base           # not HEAD
    assert series.resolve_base(_tree(repo), s, "v2~1") == git(repo, "rev-parse", "v2~1")   # BASE= wins
    # A base the tree does not have: one sentence, how to get it.
    s.named_base = "1234567890abcdef1234567890abcdef12345678"
    with pytest.raises(OrchestratorError) as err:
        series.resolve_base(_tree(repo), s, None)
    assert err.value.code == ExitCode.BAD_INPUT
    assert err.value.message.startswith(f"The series names its base commit {s.named_base} (base-commit:), "
                                        f"which {repo} does not have; fetch it (git -C {repo} fetch")


def test_b4s_cover_beside_the_mbox_is_the_series_cover(repo, tmp_path):
    """b4 am writes <name>.mbx (the patches) and <name>.cover (the cover letter, with the
    base-commit:): read as one series, its reply answering the cover."""
    base = git(repo, "rev-parse", "master")
    out = tmp_path / "b4"
    out.mkdir()
    git(repo, "format-patch", f"--base={base}", "--cover-letter", "--thread", "-o", str(out), "master..v2")
    files = sorted(out.glob("*.patch"))
    cover_text = files[0].read_text().replace("*** SUBJECT HERE ***", "tracing: probe fixes")
    (out / "v2_20261206_dev_tracing_probe_fixes.cover").write_text(cover_text)
    mbx = out / "v2_20261206_dev_tracing_probe_fixes.mbx"
    # b4's mbox: the patches only, the base-commit: line is in the cover.
    mbx.write_text("\n".join(f.read_text().split("\nbase-commit:")[0] for f in files[1:]) + "\n")
    s = series.load(str(mbx), repo)
    assert len(s.patches) == 3 and s.cover_subject.endswith("tracing: probe fixes")
    assert s.cover_message_id and s.named_base == base


@pytest.mark.parametrize("path", [".git/config", "kernel/.git/hooks/post-checkout"])
def test_a_patch_to_a_git_directory_is_bad_input(repo, tmp_path, path):
    """A patch to .git/... is refused by name before git am (whose refusal read like a
    conflict, exit 8), exit 2."""
    patch = tmp_path / "0001-x.patch"
    patch.write_text("From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001\n"
                     "From: A <a@example.org>\nSubject: [PATCH] x\n\n---\n"
                     f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -0,0 +1 @@\n+x\n")
    with pytest.raises(OrchestratorError) as exc:
        series.load_for_tree(str(patch), _tree(repo), None)
    assert exc.value.code == ExitCode.BAD_INPUT
    assert f"message 1 of 0001-x.patch touches '{path}', a file of a git repository's own .git" in exc.value.message


def test_a_lock_a_killed_git_left_in_the_cache_checkout_does_not_block_the_next_run(repo, mbox, tmp_path):
    """A git killed mid-write (a CI cancel) leaves index.lock in the cache's checkout; every
    later git there would refuse ("Unable to create index.lock: File exists")."""
    tree = _tree(repo)
    s = series.load(str(mbox), repo)
    base = series.resolve_base(tree, s, None)
    first = series.apply(tree, s, base, tmp_path / "cache", "x86_64")
    (first.worktree / ".git" / "index.lock").write_text("")
    again = series.apply(tree, series.load(str(mbox), repo), base, tmp_path / "cache", "x86_64")
    assert again.tip_commit and not (again.worktree / ".git" / "index.lock").exists()
