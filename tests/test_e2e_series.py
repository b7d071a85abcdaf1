"""End to end: a real series on the default tree (Debian's 7.2), base vs series on x86_64, bisected.

The series is written here against the default tree: a comment (no effect), a WARN on
the kprobe-event registration path (a splat, and a case that passes while it fires),
and a selftest change that breaks dynevent/add_remove_kprobe.tc. The first run of this
module builds the series' worktree cold (~6-9 min on 2 cores); the dynevent suite, and
as the tcscripts suite one case that fails at random (tests/faults/tc_coin/coin.tc):
every difference is tried RETRIES more times on each side, so the coin can only ever be
flaky and the deterministic break is still a confirmed new failure, bisected.
"""
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from conftest import git, series_on_default_tree

from orchestrator.project import PROJECT_ROOT as REPO  # noqa: E402
pytestmark = pytest.mark.e2e
BROKEN_CASE = "dynevent/add_remove_kprobe.tc"
COIN = "tcscripts/coin.tc"
COIN_DIR = REPO / "tests" / "faults" / "tc_coin"
RETRIES = 5
COMMENT = ("tracing/probes: Say what parse_btf_arg() resolves",
           [("kernel/trace/trace_probe.c", "static int parse_btf_arg(char *varname,",
             "/* Resolve a BTF-named argument and its fields into fetch insns. */\n"
             "static int parse_btf_arg(char *varname,")])
WARN = ("tracing/kprobes: Warn when a kprobe event is registered",
        [("kernel/trace/trace_kprobe.c", "\tif (trace_kprobe_is_registered(tk))\n\t\treturn -EINVAL;\n",
          "\tif (trace_kprobe_is_registered(tk))\n\t\treturn -EINVAL;\n\n"
          "\tWARN_ONCE(1, \"kprobe event %s registered\\n\", trace_probe_name(&tk->tp));\n")])
BREAK_TC = ("selftests/ftrace: Check the event directory after removing a kretprobe",
            [(f"tools/testing/selftests/ftrace/test.d/{BROKEN_CASE}", "! grep -q myevent2 dynamic_events\n",
              "! grep -q myevent2 dynamic_events\ntest -d events/kprobes/myevent2\n")])


# A checkpatch error (no space after `if`), an unused variable (-Wall) and a variable set but
# never read (W=1 only: kbuild turns that warning off below W=1).
UNTIDY = ("tracing/probes: Count BTF argument lookups",
          [("kernel/trace/trace_probe.c",
            "\tchar *field = NULL;\n\tint i, is_ptr, ret;\n\tu32 tid;\n\n\tif (!ctx->funcname",
            "\tchar *field = NULL;\n\tint i, is_ptr, ret;\n\tint unused_slot;\n\tint lookups;\n\tu32 tid;\n\n"
            "\tlookups = ctx->offset;\n\tif(!ctx->funcname")])


BOOT_BUG = ("tracing/kprobes: Check the tracefs root before the kprobe files",
            [("kernel/trace/trace_kprobe.c", "\tret = tracing_init_dentry();\n\tif (ret)\n\t\treturn 0;\n",
              "\tret = tracing_init_dentry();\n\tBUG_ON(!ret);\n\tif (ret)\n\t\treturn 0;\n")])


@pytest.fixture(scope="module")
def series_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("series")
    series_on_default_tree(out, "comment", [COMMENT])
    series_on_default_tree(out, "v1", [COMMENT, WARN, BREAK_TC], cover=True)
    series_on_default_tree(out, "boot-bug", [BOOT_BUG])
    series_on_default_tree(out, "untidy", [COMMENT, UNTIDY])
    # As `b4 am` leaves a series: the patches in the mbox, the cover letter (which names
    # the base) beside it as <name>.cover.
    named = series_on_default_tree(out, "named", [COMMENT], cover=True, base=True).read_text()
    messages = re.split(r"(?m)^(?=From [0-9a-f]{40} Mon Sep 17 00:00:00 2001$)", named)
    cover, *patches = [m for m in messages if m.strip()]
    assert "base-commit: " in cover and "[PATCH 0/1]" in cover
    (out / "named.cover").write_text(cover)
    (out / "named.mbx").write_text("".join(patches))
    return out


def _run(results: pathlib.Path, *extra: str, suites: str = "dynevent,tcscripts") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", "test", "--arch", "x86_64",
                           "--suite", suites, "--tcdir", str(COIN_DIR),
                           "--retries", str(RETRIES), "--results-dir", str(results), *extra],
                          cwd=REPO, capture_output=True, text=True, timeout=5400)


def test_series_that_breaks_a_case_is_bisected_to_its_patch(series_files, tmp_path):
    p = _run(tmp_path, "--series", str(series_files / "v1.mbx"), "--bisect", "--each-patch")
    print(p.stdout[-6000:], p.stderr[-3000:])
    latest = (tmp_path / "latest").resolve()
    assert latest.name.endswith("-compare")
    report = json.loads((latest / "compare.json").read_text())
    diff, bisect = report["diff"], report["bisect"]
    new = {e["id"]: e for e in diff["new_failures"]}
    assert new[BROKEN_CASE]["base"] == "PASS" and new[BROKEN_CASE]["series"] == "FAIL"
    # Confirmed: the break was seen on every series try and on no base try.
    assert new[BROKEN_CASE]["tries"] == {"base": 1 + RETRIES, "series": 1 + RETRIES}
    _check_coin(diff)
    # The WARN is new, named by the case it was seen during most often. Which case that is
    # follows the order cases reach a kprobe registration in each boot (a WARN_ONCE): the
    # broken case, or one the WARN made fail on some tries (a likely regression or flaky,
    # checked below); seen 2026-12-06 with dynevent/clear_select_events.tc first in each try.
    warns = [s for s in diff["new_splats"] if "kprobe event" in s["title"] or "trace_kprobe.c" in s["title"]]
    assert warns
    # The WARN's own line (kernel/trace/trace_kprobe.c:N) is one patch 2 added: the splat is
    # charged to it by that line, with no bisect step; the broken selftest is bisected to 3.
    assert warns[0]["attributed"]["patch"] == 2 and warns[0]["attributed"]["file"] == "kernel/trace/trace_kprobe.c"
    # Its frames decoded against the series' vmlinux: the WARN's own pc in trace_kprobe.c.
    first = warns[0]["frames"][0]
    assert first["frame"].startswith("__register_trace_kprobe+") and first["file"] == "kernel/trace/trace_kprobe.c"
    assert set(bisect["first_bad"]) == {BROKEN_CASE}
    assert bisect["first_bad"][BROKEN_CASE]["number"] == 3
    # A WARN_ONCE lands on the first case that registers a kprobe in each boot of each
    # guest: after a restart, or on the second guest, that can be another case, which the
    # tries (fresh guests, the differing cases only) then pass, or fail when it lands on it
    # again: flaky, or a likely regression when its tries show it significantly more often
    # than the base's (the splat itself is placed by its line). A case it lands on that
    # failed only for it was PASS by its test; the broken case fails by its own test
    # whether the WARN lands on it or not.
    flaky = {e["id"] for e in diff["flaky"]} | {e["id"] for e in diff["likely_regressions"]}
    assert all(w["case"] in new or w["case"] in flaky for w in warns)
    assert all(new[w["case"]]["test_status"] == "PASS" for w in warns
               if w["case"] in new and w["case"] != BROKEN_CASE)
    assert new[BROKEN_CASE].get("test_status") is None
    assert report["each_patch"] == {"mode": "build", "built": 3, "first_failing": None, "tested": []}
    assert [pt["subject"] for pt in report["series"]["patches"]] == [
        "[PATCH 1/3] tracing/probes: Say what parse_btf_arg() resolves",
        "[PATCH 2/3] tracing/kprobes: Warn when a kprobe event is registered",
        "[PATCH 3/3] selftests/ftrace: Check the event directory after removing a kretprobe"]
    summary = (latest / "summary.txt").read_text()
    assert f"{BROKEN_CASE}: PASS -> FAIL" in summary
    assert f"{BROKEN_CASE}: first bad patch 3/3 selftests/ftrace" in summary   # no [PATCH] tag again
    assert p.returncode == 1
    # The base run is on the tree as shipped; the series run records what was applied.
    base = json.loads((latest / "base" / "results.json").read_text())
    series = json.loads((latest / "series" / "results.json").read_text())
    assert base["series"] is None and series["series"]["tip_commit"] == series["kernel"]["git_commit"]


def _check_coin(diff: dict) -> None:
    """The coin is never a confirmed difference unless every try on each side agreed
    (the rule itself: with 6 tries a side that takes 2 * 2^-12 of luck); when its tries
    were mixed it is flaky with its counts, tried until settled (up to MAX_TRIES a side),
    or, about 2% of the times (a fair coin on both sides, Fisher's test at 0.05), a
    likely regression with its p-value."""
    from orchestrator.results import confirm
    changed = {e["id"]: e for name in ("new_failures", "fixed", "other_changes") for e in diff[name]}
    flaky = {e["id"]: e for e in diff["flaky"]}
    likely = {e["id"]: e for e in diff["likely_regressions"]}
    assert len([d for d in (changed, flaky, likely) if COIN in d]) <= 1
    if COIN in flaky:
        e = flaky[COIN]
        assert e["status"] == "FAIL"
        assert 1 + RETRIES <= len(e["series_statuses"]) <= 1 + confirm.MAX_TRIES
        assert len(set(e["base_statuses"] + e["series_statuses"])) == 2
        assert e["series"] == f"{e['series_statuses'].count('FAIL')}/{len(e['series_statuses'])}"
    if COIN in likely:
        assert likely[COIN]["p"] < confirm.ALPHA
    if COIN in changed:
        assert changed[COIN]["tries"] == {"base": 1 + RETRIES, "series": 1 + RETRIES}
    assert diff["unsettled"] == []


def test_the_patch_checks_and_w1_warnings_are_named_per_patch(series_files, tmp_path):
    """checkpatch --strict and the W=1 compile of the touched files, before and after: each
    finding under the patch that brought it."""
    p = subprocess.run([sys.executable, "-m", "orchestrator", "test", "--arch", "x86_64", "--suite", "kprobe_multi",
                        "--series", str(series_files / "untidy.mbx"), "--compare-base",
                        "--results-dir", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=3600)
    print(p.stdout[-5000:], p.stderr[-3000:])
    assert p.returncode == 1, p.stderr[-3000:]   # a warning added is a regression
    latest = (tmp_path / "latest").resolve()
    report = json.loads((latest / "compare.json").read_text())
    added = {w["message"].split(" [")[0]: w for w in report["diff"]["warnings_added"]}
    assert set(added) == {"unused variable 'unused_slot'", "variable 'lookups' set but not used"}, added
    assert all(w["patch"] == 2 and w["file"] == "kernel/trace/trace_probe.c" for w in added.values())
    text = p.stdout
    w1 = text[text.index("compiler warnings (W=1) added in files the series touches, per patch:"):]
    assert re.search(r"patch 2/2: kernel/trace/trace_probe\.c:\d+: unused variable 'unused_slot' "
                     r"\[-Wunused-variable\]", w1), w1
    assert re.search(r"patch 2/2: kernel/trace/trace_probe\.c:\d+: variable 'lookups' set but not used "
                     r"\[-Wunused-but-set-variable\]", w1), w1
    checks = text[text.index("checkpatch --strict, per patch:"):]
    patch2 = checks[checks.index("patch 2/2:"):]
    assert re.search(r"ERROR:SPACING kernel/trace/trace_probe\.c:\d+: space required before the open "
                     r"parenthesis '\('", patch2.split("\n  patch ")[0]), patch2
    page = (latest / "report.html").read_text()
    assert "Patch checks: checkpatch --strict and kernel-doc, per patch" in page and "patch 2/2: kernel/trace/trace_probe.c:" in page


def test_series_that_changes_nothing_reports_no_difference(series_files, tmp_path):
    p = _run(tmp_path, "--series", str(series_files / "comment.mbx"), "--compare-base",
             "--reply", str(tmp_path / "reply.eml"))
    print(p.stdout[-4000:], p.stderr[-3000:])
    latest = (tmp_path / "latest").resolve()
    report = json.loads((latest / "compare.json").read_text())
    _check_coin(report["diff"])
    coin_alarm = [e["id"] for e in report["diff"]["likely_regressions"]] == [COIN]
    assert report["diff"]["regressed"] is coin_alarm
    assert report["diff"]["new_failures"] == [] and report["diff"]["new_splats"] == []
    summary = (latest / "summary.txt").read_text()
    assert ("no difference between base and series" in summary) is not coin_alarm
    if report["diff"]["flaky"]:
        assert "flaky (mixed results the test cannot tell apart: not a difference):" in summary
    assert "base: reusing the results of" in p.stdout + p.stderr   # the first test's base, cached
    # The reply: to the patch's own Message-ID (no cover letter), with the summary.
    import email
    msg = email.message_from_string((tmp_path / "reply.eml").read_text())
    mid = report["series"]["patches"][0]["message_id"]
    assert msg["In-Reply-To"] == f"<{mid}>" and msg["Subject"].startswith("Re: [PATCH] ")
    payload = " ".join(msg.get_payload().split())   # as read, not as wrapped
    assert ("no difference between base and series" in payload) is not coin_alarm
    assert ("regresses" in payload) is coin_alarm
    assert p.returncode == (1 if coin_alarm else 0)


def _git_state(repo: pathlib.Path) -> dict:
    """What a run must leave as it found it in a developer's tree and its .git."""
    dot = repo / ".git"
    # Read as the orchestrator reads it: git status may otherwise refresh the index itself.
    status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
                            capture_output=True, text=True, check=True,
                            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"}).stdout
    return {"status": status,
            "worktrees": git(repo, "worktree", "list", "--porcelain"),
            "refs": git(repo, "for-each-ref"), "config": (dot / "config").stat().st_mtime_ns,
            "worktrees dir": (dot / "worktrees").exists(), "index": (dot / "index").stat().st_mtime_ns}


def test_a_developers_tree_past_the_base_is_compared_with_the_base_the_series_names(series_files, tmp_path):
    """A developer's day: their clone of the tree, two commits past the base the series was
    written against, configured in place (make defconfig), with an uncommitted edit and an
    untracked file; the series as `b4 am` leaves it (its .cover beside the mbox, naming the
    base). The comparison is against the named base, not the tree's HEAD, the reply answers
    the cover letter, and the tree and its .git are as they were."""
    from orchestrator import cache
    from orchestrator.kernel import source
    default = source.default_tree(cache.default_cache_root(), say=lambda *_: None)
    user = tmp_path / "linux"
    git(tmp_path, "clone", "-q", str(default.path), str(user))
    base = git(user, "rev-parse", "HEAD")
    for n in (1, 2):
        with open(user / "kernel" / "trace" / "Kconfig", "a") as f:
            f.write(f"# local change {n}\n")
        git(user, "commit", "-qam", f"trace: local change {n}")
    env = {k: v for k, v in os.environ.items() if k not in ("ARCH", "CROSS_COMPILE", "LLVM", "O", "MAKEFLAGS")}
    subprocess.run(["make", "-s", "-C", str(user), "defconfig"], check=True, env=env, capture_output=True)
    assert (user / ".config").is_file()
    with open(user / "kernel" / "trace" / "trace_probe.c", "a") as f:
        f.write("/* not committed */\n")
    (user / "NOTES").write_text("an untracked file\n")
    before = _git_state(user)

    # What is checked here is the tree, the base and the reply, not the suites: a few cases,
    # and no coin (its tries would only add minutes).
    p = _run(tmp_path / "r", "--kernel", str(user), "--series", str(series_files / "named.mbx"),
             "--compare-base", "--reply", str(tmp_path / "reply.eml"), "--case", "dynevent/add_remove_*",
             suites="dynevent")
    print(p.stdout[-4000:], p.stderr[-3000:])
    out = p.stdout + p.stderr
    assert f"onto {base[:12]} (the base it names)" in out
    latest = (tmp_path / "r" / "latest").resolve()
    report = json.loads((latest / "compare.json").read_text())
    assert report["series"]["named_base"] == report["series"]["base_commit"] == base
    assert report["series"]["cover_subject"].startswith("[PATCH 0/1]")
    base_run = json.loads((latest / "base" / "results.json").read_text())
    assert base_run["kernel"]["tree_id"] == f"git:{git(user, 'rev-parse', base + '^{tree}')}"
    import email
    msg = email.message_from_string((tmp_path / "reply.eml").read_text())
    assert msg["In-Reply-To"] == f"<{report['series']['cover_message_id']}>"
    assert p.returncode == 0, p.stderr[-2000:]
    assert _git_state(user) == before


def test_a_plain_run_of_the_tree_is_the_base_of_the_next_series(series_files, tmp_path):
    """`make test` of the tree, then the same inputs with a series: the comparison takes
    the plain run as its base instead of running the base's cases again."""
    def run(results, *extra):
        return subprocess.run([sys.executable, "-m", "orchestrator", "test", "--arch", "x86_64", "--suite",
                               "kprobe_multi", "--case-timeout", "77", "--results-dir", str(results), *extra],
                              cwd=REPO, capture_output=True, text=True, timeout=3600)
    plain = run(tmp_path / "plain")
    assert plain.returncode in (0, 1), plain.stderr[-2000:]
    plain_dir = (tmp_path / "plain" / "latest").resolve()
    p = run(tmp_path / "ab", "--series", str(series_files / "comment.mbx"), "--compare-base")
    print(p.stdout[-3000:], p.stderr[-2000:])
    assert f"base: reusing the results of {plain_dir}" in p.stdout + p.stderr
    assert ((tmp_path / "ab" / "latest").resolve() / "base").resolve() == plain_dir


def test_a_series_adding_a_symlink_to_dev_zero_ends_with_one_sentence(tmp_path):
    """A series whose selftest file is a symlink to /dev/zero (git applies symlinks): the run
    ends within a bound, naming the file, instead of reading it for ever under the cache's
    lock; a run right after on the same cache is not blocked."""
    import time
    from conftest import git, scratch_worktree
    scratch = scratch_worktree()
    link = scratch / "tools/testing/selftests/ftrace/test.d/dynevent/zz.tc"
    link.symlink_to("/dev/zero")
    git(scratch, "add", "-f", str(link.relative_to(scratch)))   # the tarball's .gitignore ignores all
    git(scratch, "commit", "-qm", "selftests/ftrace: Add a case that is a device")
    mbox = tmp_path / "zero.mbx"
    mbox.write_text(git(scratch, "format-patch", "--stdout", "HEAD~1") + "\n")
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "orchestrator", "test", "--arch", "x86_64", "--suite", "dynevent",
                        "--series", str(mbox), "--results-dir", str(tmp_path / "r")],
                       cwd=REPO, capture_output=True, text=True, timeout=1800)
    seconds = time.monotonic() - t0
    print(p.stdout[-3000:], p.stderr[-2000:], f"{seconds:.0f}s")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "test.d/dynevent/zz.tc is a symlink to /dev/zero; the guest image takes regular files only" in p.stderr
    again = subprocess.run([sys.executable, "-m", "orchestrator", "test", "--arch", "x86_64", "--suite",
                            "kprobe_multi", "--results-dir", str(tmp_path / "r2")],
                           cwd=REPO, capture_output=True, text=True, timeout=900)
    assert again.returncode in (0, 1) and "waiting for another run" not in again.stdout + again.stderr


def test_a_series_whose_kernel_does_not_boot_gets_a_reply_without_tested_by(series_files, tmp_path):
    """A BUG_ON in an initcall the patch changed: the guest dies at boot on every try. The
    base booted (cached from the first test): the comparison says the series' kernel does
    not boot, names the BUG's line as the patch's, and the reply gives no Tested-by."""
    p = _run(tmp_path, "--series", str(series_files / "boot-bug.mbx"), "--compare-base",
             "--reply", str(tmp_path / "reply.eml"))
    print(p.stdout[-4000:], p.stderr[-3000:])
    assert p.returncode == 6
    latest = (tmp_path / "latest").resolve()
    report = json.loads((latest / "compare.json").read_text())
    failed = report["diff"]["series_failed"]
    assert failed["stage"] == "boot" and report["diff"]["regressed"] is True
    bugs = [s for s in failed["splats"] if s["title"].startswith("kernel BUG at kernel/trace/trace_kprobe.c:")]
    assert bugs and bugs[0]["attributed"]["patch"] == 1
    body = " ".join((tmp_path / "reply.eml").read_text().split())   # as read, not as wrapped
    assert "the series' kernel does not boot (the base's does)" in body
    assert "Tested-by:" not in body and "regresses on x86_64 (its kernel does not boot)" in body


def _path_without(tmp_path: pathlib.Path, prefix: str) -> str:
    """PATH as it is, less every executable named prefix*: a host without that toolchain."""
    import os
    shadow = tmp_path / "bin"
    shadow.mkdir()
    for d in os.environ["PATH"].split(os.pathsep):
        for exe in pathlib.Path(d).glob("*") if pathlib.Path(d).is_dir() else []:
            if not exe.name.startswith(prefix) and not (shadow / exe.name).exists():
                (shadow / exe.name).symlink_to(exe)
    return str(shadow)


def test_every_arch_runs_and_one_reply_covers_them_when_one_cannot(series_files, tmp_path):
    """x86_64 and arm64 on a host without arm64's cross compiler: x86_64's comparison is
    made, arm64's missing tool is its verdict, one reply names both and gives no Tested-by,
    and the exit code is the worse arch's."""
    import email
    import os
    env = {**os.environ, "PATH": _path_without(tmp_path, "aarch64-linux-gnu-")}
    # The module's suites and retries: x86_64's base is the one the earlier tests ran.
    p = subprocess.run([sys.executable, "-m", "orchestrator", "test", "--arch", "x86_64,arm64",
                        "--suite", "dynevent,tcscripts", "--tcdir", str(COIN_DIR), "--retries", str(RETRIES),
                        "--series", str(series_files / "comment.mbx"), "--compare-base",
                        "--reply", str(tmp_path / "reply.eml"), "--results-dir", str(tmp_path / "r")],
                       cwd=REPO, capture_output=True, text=True, timeout=5400, env=env)
    print(p.stdout[-3000:], p.stderr[-3000:])
    assert "Traceback" not in p.stderr
    assert p.returncode == 3, p.stderr                       # arm64: a host tool is missing
    assert "series, per arch: x86_64 exit " in p.stdout + p.stderr and "arm64 exit 3" in p.stdout + p.stderr
    body = " ".join(email.message_from_string((tmp_path / "reply.eml").read_text()).get_payload().split())
    assert "I ran the series on x86_64, arm64 in QEMU" in body
    assert "arm64: no comparison: " in body and "aarch64-linux-gnu-gcc" in body
    assert "x86_64 (QEMU " in body                           # x86_64's comparison, in full
    assert "Tested-by:" not in body and "arm64 got no comparison (above)" in body
