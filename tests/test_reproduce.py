"""reproduce.sh (results/reproduce.py), written from a real run: x86_64, Debian 7.2.12 with a
one-patch series that makes kprobe/kretprobe_maxactive.tc FAIL (tests/data/runs/
x86_64-7.2-series-fail). Booting it is tests/test_e2e_x86_64.py's; here, what it says and
that nothing from the run reaches the shell as code."""
from __future__ import annotations

import pathlib
import subprocess

import msgspec

from orchestrator.results import reproduce, summary
from orchestrator.results.recorder import load_run
from orchestrator.suites.runner import CaseSpec

RUN = pathlib.Path(__file__).parent / "data" / "runs" / "x86_64-7.2-series-fail"
FAILING = "kprobe/kretprobe_maxactive.tc"


def _specs(run) -> list[CaseSpec]:
    return [CaseSpec(c.id, c.suite, f"/kto/ftrace/test.d/{c.id}") for c in run.cases]


def _sh_parses(text: str, tmp_path: pathlib.Path) -> None:
    path = tmp_path / "reproduce.sh"
    path.write_text(text)
    check = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_it_names_the_kernel_builds_it_and_runs_the_cases_that_did_not_pass(tmp_path):
    run = load_run(RUN)
    text = reproduce.script(run, _specs(run), "reboot -f")
    _sh_parses(text, tmp_path)
    assert f"# tree: {run.kernel.path} (" in text and f"# commit: {run.kernel.git_commit};" in text
    assert f"# series: {run.series.spec} (" in text and f"on base {run.series.base_commit}" in text
    assert "# compiler: gcc (Debian 12.2.0-14+deb12u1) 12.2.0" in text
    # The cases that did not pass, by default; each the command the run sent the guest.
    assert f"[ $# -gt 0 ] || set -- kprobe/kprobe_non_uniq_symbol.tc {FAILING}" in text
    assert f"{FAILING}) commands=\"$commands\"'/kto/run-case /kto/ftrace/test.d/{FAILING} /tmp/kto/repro'" in text
    # REBUILD=1: the run's make, with the tree and build dir as variables and no ccache.
    assert 'make -C "$TREE" O="$BUILD" ARCH=x86_64 CC=gcc olddefconfig' in text
    assert 'make -C "$TREE" O="$BUILD" ARCH=x86_64 CC=gcc -j"$(nproc)" bzImage vmlinux modules scripts_gdb' in text
    assert "KERNEL_IMAGE=$BUILD/arch/x86/boot/bzImage" in text
    assert '-kernel "$KERNEL_IMAGE" -initrd "$INITRD"' in text and "printf '%s\\n' 'reboot -f' >&3" in text


def test_the_summary_gives_each_failing_case_its_line():
    run = load_run(RUN)
    text = summary.render(run, "results/r")
    assert f"  reproduce: sh results/r/reproduce.sh {FAILING}" in text
    assert text.count("reproduce: sh") == 1            # UNSUPPORTED is no failure to reproduce


def test_a_case_id_from_a_series_is_quoted_never_run(tmp_path):
    run = load_run(RUN)
    hostile = "kprobe/x'; touch /tmp/owned; '.tc"
    cases = [msgspec.structs.replace(c, id=hostile) if c.id == FAILING else c for c in run.cases]
    run = msgspec.structs.replace(run, cases=cases, run_id=run.run_id)
    text = reproduce.script(run, _specs(run), None)
    _sh_parses(text, tmp_path)
    assert "'kprobe/x'\"'\"'; touch /tmp/owned; '\"'\"'.tc'" in text
    assert "reboot -f' >&3" not in text        # no halt command on this arch: the script kills QEMU


def test_no_script_for_a_run_that_never_had_a_guest():
    run = msgspec.structs.replace(load_run(RUN), qemu_argv=[])
    assert reproduce.script(run, [], "reboot -f") is None
