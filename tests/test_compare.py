"""Base vs series comparison, on the results of a real A/B run on x86_64: Debian's 6.12.117
and a 3-patch series (a comment; a kprobe_multi cookie lookup that always returns the
first cookie; a selftest that expects a removed event's directory to stay)."""
from __future__ import annotations

import copy
import json
import shutil

import pytest

from orchestrator import model
from orchestrator.model import RunRecord
from orchestrator.results import compare
from orchestrator.results.recorder import read_comparison

AB = "ab-x86_64-v2"


def run(document: dict) -> RunRecord:
    """A real run's results.json, edited as a document by a test, as the record it is."""
    return model.convert(document, RunRecord)


def case(case_id: str, status: str, reason: str = "") -> dict:
    return {"id": case_id, "suite": case_id.split("/")[0], "description": case_id, "status": status,
            "seconds": 1.0, "reason": reason}


def diff_of(base: dict, series: dict, *dirs) -> dict:
    """compare.compare() of two documents, as compare.json holds its diff."""
    return compare.compare(run(base), run(series), *dirs).as_dict()


@pytest.fixture
def ab(data_dir, tmp_path):
    src = data_dir / AB
    dirs = {}
    for side in ("base", "series"):
        d = tmp_path / side
        d.mkdir()
        shutil.copy(src / side / "results.json", d / "results.json")
        shutil.copy(src / "config", d / "config")   # the series changes no option
        dirs[side] = d
    load = lambda side: json.loads((dirs[side] / "results.json").read_text())  # noqa: E731
    return load("base"), load("series"), dirs


def test_the_real_series_adds_exactly_two_failures(ab):
    base, series, dirs = ab
    diff = diff_of(base, series, dirs["base"], dirs["series"])
    assert [(e["id"], e["base"], e["series"]) for e in diff["new_failures"]] == [
        ("dynevent/add_remove_kprobe.tc", "PASS", "FAIL"),
        ("kprobe_multi/cookies", "PASS", "FAIL")]
    assert diff["new_failures"][1]["reason"] == "wrong: cookie 1 on __x64_sys_getpid: 15 hits, expected 3"
    for key in ("fixed", "newly_supported", "coverage_lost", "other_changes", "only_in_base",
                "only_in_series", "new_cases_failing", "new_splats", "gone_splats", "warnings_added",
                "warnings_unchecked"):
        assert diff[key] == [], key
    # Both runs hit the same Oops in add_remove_tprobe_module.tc (numbers differ): not new.
    assert len(base["splats"]) == len(series["splats"]) == 2
    assert diff["config"] == {"gained": [], "lost": [], "changed": []}
    assert diff["regressed"] is True


def test_the_other_way_round_they_are_fixed(ab):
    base, series, dirs = ab
    diff = diff_of(series, base, dirs["series"], dirs["base"])
    assert [e["id"] for e in diff["fixed"]] == ["dynevent/add_remove_kprobe.tc", "kprobe_multi/cookies"]
    assert diff["new_failures"] == [] and diff["regressed"] is False


def test_support_changes_and_cases_on_one_side(ab):
    base, series, _ = ab
    series = copy.deepcopy(series)
    by_id = {c["id"]: c for c in series["cases"]}
    by_id["dynevent/add_remove_fprobe.tc"]["status"] = "UNSUPPORTED"
    base = copy.deepcopy(base)
    next(c for c in base["cases"] if c["id"] == "kprobe/kprobe_non_uniq_symbol.tc")["status"] = "UNSUPPORTED"
    next(c for c in series["cases"] if c["id"] == "kprobe/kprobe_non_uniq_symbol.tc")["status"] = "PASS"
    series["cases"] = [c for c in series["cases"] if c["id"] != "kprobe_multi/session"]
    series["cases"].append(case("tcscripts/new_case.tc", "PASS"))
    series["cases"].append(case("tcscripts/new_broken_case.tc", "ERROR", "hung"))
    base["cases"].append(case("tcscripts/gone_unsupported.tc", "UNSUPPORTED"))
    diff = diff_of(base, series)
    # A case that ran on the base and is skipped (or gone) with the series: coverage lost.
    assert [(e["id"], e.get("series")) for e in diff["coverage_lost"]] == [
        ("dynevent/add_remove_fprobe.tc", "UNSUPPORTED"), ("kprobe_multi/session", None)]
    assert [e["id"] for e in diff["newly_supported"]] == ["kprobe/kprobe_non_uniq_symbol.tc"]
    assert diff["only_in_base"] == [{"id": "tcscripts/gone_unsupported.tc", "base": "UNSUPPORTED"}]
    assert diff["only_in_series"] == [{"id": "tcscripts/new_case.tc", "series": "PASS"}]
    assert diff["new_cases_failing"] == [{"id": "tcscripts/new_broken_case.tc", "series": "ERROR", "reason": "hung"}]


@pytest.mark.parametrize("base_status, series_status, listed", [
    ("PASS", "ERROR", "new_failures"), ("XFAIL", "UNRESOLVED", "new_failures"),
    ("UNSUPPORTED", "FAIL", "new_failures"), ("FAIL", "PASS", "fixed"), ("ERROR", "XFAIL", "fixed"),
    ("PASS", "SKIP", "coverage_lost"), ("FAIL", "UNSUPPORTED", "coverage_lost"),
    ("UNTESTED", "PASS", "newly_supported"), ("FAIL", "ERROR", "other_changes"),
    ("PASS", "XFAIL", "other_changes")])
def test_failing_or_not_decides_first(base_status, series_status, listed):
    assert compare.change_list(base_status, series_status) == listed


def test_a_new_splat_is_told_from_the_same_one_with_other_numbers(ab):
    base, series, _ = ab
    series = copy.deepcopy(series)
    renumbered = copy.deepcopy(series["splats"][0])
    renumbered["title"] = renumbered["title"].replace("CPU: 0", "CPU: 1").replace("PID: 1", "PID: 9")
    series["splats"] = [renumbered, series["splats"][1],
                        {"kind": "warning", "title": "WARNING: CPU: 1 PID: 77 at kernel/trace/trace_kprobe.c:496 "
                                                      "__register_trace_kprobe+0x1c/0x120",
                         "case": "dynevent/add_remove_btfarg.tc", "kernel_time": 3.0, "console_line": 9,
                         "lines": []}]
    diff = diff_of(base, series)
    assert [s["title"] for s in diff["new_splats"]] == [
        "WARNING: CPU: 1 PID: 77 at kernel/trace/trace_kprobe.c:496 __register_trace_kprobe+0x1c/0x120"]
    assert diff["new_splats"][0]["case"] == "dynevent/add_remove_btfarg.tc"
    assert diff["gone_splats"] == [] and diff["regressed"] is True


def test_config_gained_lost_and_changed(ab):
    base, series, dirs = ab
    cfg = (dirs["series"] / "config").read_text()
    assert "CONFIG_FPROBE=y" in cfg and "CONFIG_HZ=250" in cfg
    cfg = cfg.replace("CONFIG_FPROBE=y", "# CONFIG_FPROBE is not set").replace("CONFIG_HZ=250", "CONFIG_HZ=1000")
    (dirs["series"] / "config").write_text(cfg + "CONFIG_KTO_NEW_OPTION=y\n")
    diff = diff_of(base, series, dirs["base"], dirs["series"])
    assert diff["config"]["gained"] == ["CONFIG_KTO_NEW_OPTION=y"]
    assert "CONFIG_FPROBE=y" in diff["config"]["lost"]
    assert "CONFIG_HZ=250->1000" in diff["config"]["changed"]


def test_warnings_compared_without_line_numbers(ab):
    base, series, _ = ab
    base, series = copy.deepcopy(base), copy.deepcopy(series)
    base["build_warnings"] = {"kernel/trace/bpf_trace.c": ["120: unused variable 'x' [-Wunused-variable]"]}
    series["build_warnings"] = {
        "kernel/trace/bpf_trace.c": ["124: unused variable 'x' [-Wunused-variable]",   # moved: old
                                     "2730: 'addr' set but not used [-Wunused-but-set-variable]"],
        "kernel/trace/trace_kprobe.c": ["10: something"]}   # the base was not compiled for it
    diff = diff_of(base, series)
    assert diff["warnings_added"] == [{"file": "kernel/trace/bpf_trace.c", "line": 2730, "patch": None,
                                       "message": "'addr' set but not used [-Wunused-but-set-variable]"}]
    assert diff["warnings_unchecked"] == ["kernel/trace/trace_kprobe.c"]
    # A base compiled at another W= level (a run from before W=1) is no claim either way.
    series["build_warnings_level"] = 1
    diff = diff_of(base, series)
    assert diff["warnings_added"] == [] and diff["warnings_unchecked"] == sorted(series["build_warnings"])


def test_mail_summary_of_the_real_run(ab, data_dir):
    base, series, dirs = ab
    report = read_comparison(data_dir / AB)
    text = compare.mail_summary(compare.compare(run(base), run(series), dirs["base"], dirs["series"]),
                                run(base), run(series), report.bisect, report.each_patch)
    assert text == (data_dir / AB / "summary.txt").read_text().rstrip("\n")
    lines = text.splitlines()
    assert lines[0].startswith("x86_64 (QEMU TCG), Linux 6.12.117, base 72d0408916ec, series: "
                               "[PATCH v2 0/3] tracing: probe argument fixes (3 patches)")
    assert "    kprobe_multi/cookies: first bad patch 2/3 bpf: Simplify kprobe_multi cookie lookup" in lines
    assert not any("Signed-off-by" in l or "Tested-by" in l for l in lines)


def test_no_difference_is_said(ab):
    base, _, dirs = ab
    diff = compare.compare(run(base), run(base), dirs["base"], dirs["base"])
    assert diff.regressed is False
    assert compare.mail_summary(diff, run(base), run(base)).endswith("  no difference between base and series")


def test_baseline_is_the_newest_complete_run_of_the_arch(data_dir, tmp_path):
    from orchestrator.results import baseline
    runs = data_dir / "runs"
    found = baseline.find_baseline(runs, "x86_64", exclude="none")
    candidates = [json.loads(p.read_text()) for p in runs.glob("*/results.json")]
    newest = max((d["started_at"], d["run_id"]) for d in candidates
                 if d["arch"] == "x86_64" and d["state"] == "complete")
    assert json.loads((found / "results.json").read_text())["run_id"] == newest[1]
    assert baseline.find_baseline(runs, "s390x", exclude="none") is None
    assert baseline.find_baseline(runs / "arm64", "x86_64", exclude="none") == runs / "arm64"  # a run dir itself


def test_a_run_compared_with_its_baseline(ab, tmp_path):
    import io
    from orchestrator.results import baseline
    from orchestrator.progress import Progress
    from orchestrator.results.recorder import Recorder
    base, series, dirs = ab
    rec = Recorder(tmp_path / "results", "20261206-010101-x86_64-1",
                   {k: v for k, v in series.items() if k in ("arch", "kernel", "host", "versions", "suites")})
    rec.set("cases", series["cases"])
    rec.set("splats", series["splats"])
    out = io.StringIO()
    baseline.compare_with(rec, dirs["base"], Progress(out), tries=lambda case_ids: [])
    got = json.loads((rec.dir / "results.json").read_text())["baseline"]
    assert got["run_id"] == base["run_id"]
    assert [e["id"] for e in got["diff"]["new_failures"]] == ["dynevent/add_remove_kprobe.tc",
                                                             "kprobe_multi/cookies"]
    assert "since 20261122-232417-x86_64-25167-base: kprobe_multi/cookies PASS -> FAIL" in out.getvalue()


def test_a_series_whose_kernel_does_not_boot_is_the_finding(data_dir, tmp_path):
    """The base booted and ran; the series' guest died at boot with a BUG in a line its
    patch added: the summary, the page and the reply say so, and no Tested-by."""
    from orchestrator.results import report
    from orchestrator.series import reply
    base = json.loads((data_dir / "runs" / "x86_64-7.2" / "results.json").read_text())
    dead = copy.deepcopy(base)
    dead.update(state="failed", cases=[], exit_code=6, verdict="The x86_64 guest did not boot (QEMU exited)")
    dead["stages"]["boot"] = {"state": "failed", "seconds": 3.0, "at": 1.0, "error": "QEMU exited"}
    bug = {"kind": "bug", "title": "kernel BUG at kernel/trace/trace_kprobe.c:2071!", "case": None,
           "kernel_time": 0.9, "console_line": 200, "lines": [], "count": 1}
    dead["splats"] = [bug]
    from orchestrator.suites.splats import splat_key
    att = {splat_key(model.convert(bug, model.Splat)): model.Attribution(
        patch=1, patches=1, subject="x", commit="c", file="kernel/trace/trace_kprobe.c", line=2071)}
    diff = compare.series_failed(run(dead), att)
    assert diff.regressed is True and diff.series_failed.stage == "boot"
    text = compare.mail_summary(diff, run(base), run(dead))
    assert "  the series' kernel does not boot (the base's does): QEMU exited\n" in text
    assert ("    kernel BUG at kernel/trace/trace_kprobe.c:2071!: in a line patch 1/1 changed: "
            "kernel/trace/trace_kprobe.c:2071") in text
    assert "no difference" not in text
    page = report.render_html([(model.convert(base, model.RunRecord), data_dir / "runs" / "x86_64-7.2"),
                               (model.convert(dead, model.RunRecord), tmp_path)], diff)
    assert "The series regresses: its kernel does not boot" in page
    info = model.SeriesInfo(kind="mbox", spec="x.mbx", title="x", base_commit="b", tip_commit="t", worktree="w",
                            patches=[model.Patch(number=1, subject="[PATCH] x", author="B <b@x>", message_id="m@x")])
    body = reply.render([model.Comparison(schema_version=1, arch="x86_64", base_run=base["run_id"],
                                          series_run=dead["run_id"], series=info, diff=diff)],
                        [text], "A <a@example.org>")
    flat = " ".join(body.split())
    assert "Tested-by:" not in flat.replace("no Tested-by from me", "") and \
        "regresses on x86_64 (its kernel does not boot)" in flat


def test_a_build_error_names_the_file_relative_to_the_tree(tmp_path):
    """The compiler prints the path it was given (the cache's worktree, or the view it
    builds in); a maintainer reads arch/arm64/...: both prefixes go."""
    from orchestrator.kernel.build import first_errors
    log = tmp_path / "build.log"
    log.write_text("  CC      arch/arm64/kernel/probes/kprobes.o\n"
                   "/cache/worktrees/linux-1/arch/arm64/kernel/probes/kprobes.c:115:13: error: implicit declaration\n"
                   "/cache/views/source/kernel/trace/trace_kprobe.c:9:1: error: expected ';'\n"
                   "make[2]: *** [scripts/Makefile.build:287: arch/arm64/kernel/probes/kprobes.o] Error 1\n")
    errs = first_errors(log, source_roots=("/cache/views/source", "/cache/worktrees/linux-1/"))
    assert errs[:2] == ["arch/arm64/kernel/probes/kprobes.c:115:13: error: implicit declaration",
                        "kernel/trace/trace_kprobe.c:9:1: error: expected ';'"]
    assert first_errors(log)[0].startswith("/cache/worktrees/linux-1/arch/arm64")
