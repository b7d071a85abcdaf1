"""Known causes of cases that do not pass (orchestrator/data/causes.yaml), applied to real
runs captured here: each explanation lands on the runs it was written from and on no
other arch or kernel, a splat explains its case, and what nothing explains is named."""
from __future__ import annotations

import json
import pathlib
from typing import get_args

import msgspec
import pytest

from orchestrator import model
from orchestrator.results import causes, report, summary
from orchestrator.suites.status import PASSED

RUNS = pathlib.Path(__file__).parent / "data" / "runs"


def _run(name: str) -> model.RunRecord:
    return model.decode((RUNS / name / "results.json").read_bytes())


_META = {"arch": "arm64", "host": {"machine": "x86_64", "kernel": "6.1"},
         "versions": {"orchestrator": "0.1.0", "qemu": "QEMU 10"},
         "kernel": {"version": "7.2.12", "origin": "test", "path": "/tmp/linux", "tree_id": "git:0"}}


def _case(run: model.RunRecord, case_id: str) -> model.CaseResult:
    return next(c for c in run.cases if c.id == case_id)


def test_the_table_parses_and_its_kinds_are_the_schemas():
    assert causes.table()
    assert list(causes.KINDS) == list(get_args(model.CauseKind))


def test_every_case_of_the_arm64_6_12_run_that_did_not_pass_is_explained():
    data = _run("arm64")
    assert data.kernel.version == "6.12.117"
    assert causes.unexplained(data) == []
    fprobe = causes.of(_case(data, "dynevent/add_remove_fprobe.tc"), data)
    assert fprobe.kind == "tree" and "FPROBE" in fprobe.why
    assert causes.of(_case(data, "dynevent/add_remove_uprobe.tc"), data).kind == "test"
    assert causes.of(_case(data, "kprobe/kprobe_opt_types.tc"), data).kind == "test"
    assert all(causes.of(c, data) is None for c in data.cases if c.status in PASSED)


def test_an_explanation_stays_with_its_kernel_and_arch():
    """arm64's missing fprobe is 6.12's: the same statuses on 7.2 or on x86_64 are not
    explained by it (there they would be news)."""
    data = _run("arm64")
    for change in ({"kernel": msgspec.structs.replace(data.kernel, version="7.2.12")}, {"arch": "x86_64"}):
        other = msgspec.structs.replace(data, **change)
        left = {c.id for c in causes.unexplained(other)}
        assert "dynevent/add_remove_fprobe.tc" in left, change
    # 6.12 is a prefix of 6.12.117, not of 6.120.
    assert causes.unexplained(msgspec.structs.replace(
        data, kernel=msgspec.structs.replace(data.kernel, version="6.120.1")))


def test_a_splat_explains_its_case_as_a_kernel_bug():
    data = _run("x86_64-base")
    cause = causes.of(_case(data, "dynevent/add_remove_tprobe_module.tc"), data)
    assert cause.kind == "kernel" and "ftrace.c:387" in cause.why


def test_what_nothing_explains_is_named_in_the_summary():
    """The 7.2 run captured before CONFIG_EPROBE_EVENTS was asked for: its eprobe FAILs
    have no known cause, and the terminal summary names them."""
    data = _run("x86_64-7.2")
    left = [c.id for c in causes.unexplained(data)]
    assert left == ["dynevent/add_remove_eprobe.tc", "dynevent/eprobes_syntax_errors.tc",
                    "dynevent/test_duplicates.tc"]
    text = summary.render(data, "results/x")
    assert "not explained: 3 case(s)" in text and "dynevent/test_duplicates.tc" in text
    assert "known cause, config: The case needs a symbol defined more than once" in text


def test_the_report_pages_show_the_cause_or_its_absence():
    data = _run("x86_64-base")
    html = report.render_html([(data, RUNS / "x86_64-base")])
    assert "known cause, kernel (a kernel bug): warning: WARNING: CPU: 0 PID: 1024 at kernel/trace/ftrace.c:387" in html
    mail = report.summary_text([data])
    assert "    known cause, tree: The case's kernel-memory half probes vfs_symlink()" in mail
    html72 = report.render_html([(_run("x86_64-7.2"), RUNS / "x86_64-7.2")])
    assert "3 not explained" in html72 and html72.count("no known cause: look here first") == 3


@pytest.mark.parametrize("entry, word", [
    ({"case": "x", "why": "y"}, "kind"),
    ({"case": "x", "kind": "weather", "why": "y"}, "kind"),
    ({"kind": "tree", "why": "y"}, "case"),
    ("just text", "case"),
])
def test_a_bad_table_entry_is_refused_with_its_number(entry, word):
    with pytest.raises(ValueError, match=rf"entry 2 needs .*{word}"):
        causes.parse([{"case": "ok", "kind": "tree", "why": "fine"}, entry])


def test_a_finished_run_records_each_cause_in_results_json(tmp_path):
    from orchestrator.model import CaseResult
    from orchestrator.results.recorder import Recorder
    rec = Recorder(tmp_path, "20261206-010101-arm64-1", _META)
    rec.add_case(CaseResult("kprobe/kprobe_opt_types.tc", "kprobe", "x", "UNSUPPORTED", 1.0))
    rec.add_case(CaseResult("kprobe/kprobe_args.tc", "kprobe", "x", "FAIL", 1.0, reason="new"))
    rec.add_case(CaseResult("kprobe/profile.tc", "kprobe", "x", "PASS", 1.0))
    rec.finish("complete", "1 failing case(s)", 1)
    cases = json.loads((tmp_path / "20261206-010101-arm64-1" / "results.json").read_text())["cases"]
    assert [c["cause"] and c["cause"]["kind"] for c in cases] == ["test", None, None]


def test_a_splat_the_table_names_is_known_noise_on_its_arches_only():
    from orchestrator.results import causes
    oops = "Oops: int3: 0000 [#1] SMP"
    assert causes.known_splat(oops, "x86_64", "7.2.12").kind == "emulator"
    assert causes.known_splat(oops, "arm64", "7.2.12") is None
    assert causes.known_splat("kernel BUG at kernel/trace/trace_kprobe.c:938!", "x86_64", "7.2.12") is None


def test_no_case_of_a_riscv64_7_2_run_is_the_images_fault_or_unsettled():
    """A real default-suites run on riscv64 (7.2.12, QEMU 10, Debian's busybox-static): the
    uprobe case passes (the zig/musl busybox's awk crashed), and multiple_kprobes.tc's hang
    is the kernel's (a probe on the breakpoint handler itself), not a debt."""
    run = _run("riscv64-7.2")
    assert run.arch == "riscv64" and run.kernel.version.startswith("7.2.")
    assert _case(run, "dynevent/add_remove_uprobe.tc").status == "PASS"
    explained = {c.id: causes.of(c, run) for c in run.cases if c.status not in PASSED}
    assert explained and all(e is not None for e in explained.values()), explained
    assert {e.kind for e in explained.values()}.isdisjoint({"image", "unsettled"}), explained
    assert "handle_break" in explained["kprobe/multiple_kprobes.tc"].why
