"""What a case's result rests on, against a scripted guest (tests/scripted_guest.py) on a
real ConsoleSession and GuestRunner: the exit status and plan of a .tc case, the taint
mask, a splat the console prints after the case's end marker, and an end marker a case
forges from what it can read."""
from __future__ import annotations

import io
import json
import pathlib
import sys

from orchestrator.progress import Progress
from orchestrator.suites.runner import CaseSpec, GuestRunner
from orchestrator.suites.splats import SplatDetector
from orchestrator.vm import qemu
from orchestrator.vm.console import ConsoleSession

GUEST = pathlib.Path(__file__).with_name("scripted_guest.py")
WARN = ["------------[ cut here ]------------",
        "WARNING: kernel/trace/trace_kprobe.c:498 at __register_trace_kprobe+0x52/0x120, CPU#1: ftracetest/105",
        "Modules linked in:",
        "---[ end trace 0000000000000000 ]---"]


def _tap(*results: str, plan: int | None = None) -> list[str]:
    return ["TAP version 13", f"1..{len(results) if plan is None else plan}", *results]


def _run(tmp_path: pathlib.Path, script: list[dict], names: list[str]):
    path = tmp_path / "script.json"
    path.write_text(json.dumps(script))
    detector = SplatDetector()

    def start() -> ConsoleSession:
        return ConsoleSession([sys.executable, str(GUEST), str(path), "-append", "console=ttyS0"],
                              io.BytesIO(), detector.feed)

    runner = GuestRunner(start, detector, Progress(io.StringIO()), 10.0, 10.0, None)
    results = []
    try:
        for k, name in enumerate(names, 1):
            spec = CaseSpec(f"kprobe/{name}.tc", "kprobe", f"/kto/ftrace/test.d/kprobe/{name}.tc")
            results += runner.run_case(spec, k, len(names), f"/tmp/kto/{k}")
    finally:
        runner.kill()
    return {r.id: r for r in results}, detector


def test_a_tc_case_passes_only_when_result_plan_and_exit_agree(tmp_path):
    script = [{"output": _tap("ok 1 agrees"), "rc": 0},
              {"output": _tap("ok 1 exits one"), "rc": 1},
              {"output": _tap("ok 1 half of its plan", plan=2), "rc": 0},
              {"output": _tap("not ok 1 fails and says so"), "rc": 1}]
    got, _ = _run(tmp_path, script, ["agrees", "exits_one", "half", "fails"])
    assert got["kprobe/agrees.tc"].status == "PASS"
    one = got["kprobe/exits_one.tc"]
    assert (one.status, one.test_status) == ("ERROR", "PASS")
    assert one.reason == "it exited 1 after no failing result"
    half = got["kprobe/half.tc"]
    assert half.status == "ERROR" and half.reason == "ftracetest planned 2 result(s) and printed 1"
    assert got["kprobe/fails.tc"].status == "FAIL"


def test_a_case_that_raises_the_taint_mask_fails_with_the_bit_named(tmp_path):
    script = [{"output": _tap("ok 1 clean"), "taint": 0},
              {"output": _tap("ok 1 warns quietly"), "taint": 512},
              {"output": _tap("ok 1 after it"), "taint": 512}]   # the mask stays: nothing new
    got, detector = _run(tmp_path, script, ["clean", "quiet", "after"])
    assert detector.splats == []
    quiet = got["kprobe/quiet.tc"]
    assert (quiet.status, quiet.test_status) == ("FAIL", "PASS")
    assert quiet.reason == "the test said PASS, but the kernel's taint gained W (WARN: a WARN fired)"
    assert got["kprobe/clean.tc"].status == got["kprobe/after.tc"].status == "PASS"


def test_a_splat_printed_after_the_end_marker_is_the_case_s_own(tmp_path):
    script = [{"output": _tap("ok 1 warns late"), "after_end": WARN, "taint": 512},
              {"output": _tap("ok 1 next"), "taint": 512}]
    got, detector = _run(tmp_path, script, ["late", "next"])
    (splat,) = detector.splats
    assert splat.case == "kprobe/late.tc"
    assert splat.location.as_dict() == {"file": "kernel/trace/trace_kprobe.c", "line": 498}
    assert got["kprobe/late.tc"].status == "FAIL" and got["kprobe/late.tc"].splats
    assert got["kprobe/next.tc"].status == "PASS" and not got["kprobe/next.tc"].splats


def test_a_fence_that_lands_mid_line_leaves_the_line_whole(tmp_path):
    """Seen on a real console (kprobe_multi/return_probe, 7.2.12 x86_64):
    `ok 1 kprobe_multi/return_probe[    1.504054] KTO:FENCE:...`, then the newline."""
    script = [{"output": _tap("ok 1 cut by the fence"), "fence_cuts_last_line": True},
              {"output": _tap("ok 1 next")}]
    got, detector = _run(tmp_path, script, ["cut", "next"])
    assert got["kprobe/cut.tc"].status == "PASS" and got["kprobe/cut.tc"].description == "cut by the fence"
    assert got["kprobe/next.tc"].status == "PASS" and detector.splats == []


def test_a_case_cannot_forge_its_end_from_the_boot_nonce(tmp_path):
    """The case prints an end marker with the nonce of /proc/cmdline, then the kernel
    warns: the forged marker is output, the case runs on to its real end and fails."""
    script = [{"output": _tap("ok 1 forges"), "forge_end": True, "kernel": WARN, "rc": 1, "taint": 512},
              {"output": _tap("ok 1 next"), "taint": 512}]
    got, detector = _run(tmp_path, script, ["forges", "next"])
    forged = got["kprobe/forges.tc"]
    assert forged.status == "ERROR" and "exited 1 after no failing result" in forged.reason
    assert [s.case for s in detector.splats] == ["kprobe/forges.tc"]
    assert got["kprobe/next.tc"].status == "PASS"


def test_printk_timestamps_cannot_be_turned_off(tmp_path):
    """The detector tells kernel lines by their timestamps: the command line ends with
    printk.time=1 after whatever the user adds, and the base fragment requires PRINTK_TIME."""
    from orchestrator.arches import get_arch
    from orchestrator.kernel import kconfig
    from orchestrator.project import KCONFIGS_DIR
    line = qemu.kernel_cmdline(get_arch("x86_64"), "printk.time=0 quiet")
    assert line.split()[-1] == "printk.time=1" and "printk.time=0" in line
    merged = kconfig.merge([KCONFIGS_DIR / "base.config"])
    assert merged["CONFIG_PRINTK_TIME"].required


def test_a_kernel_that_dies_in_every_case_is_not_booted_for_every_case(tmp_path):
    """Each case kills the guest (a panic): GuestRunner restarts it, but after max_restarts
    cases in a row it stops booting, and the rest are ERROR without a boot each."""
    got, _ = _run(tmp_path, [{"die": True}], [f"c{k}" for k in range(1, 9)])
    died = [c for c in got.values() if "the guest died during the case" in c.reason]
    skipped = [c for c in got.values() if c.reason.startswith("not run: the guest died or was restarted in each "
                                                               "of the last 5 cases")]
    assert len(died) == 5 and len(skipped) == 3 and all(c.status == "ERROR" for c in got.values())


LEAK = ["kmemleak: unreferenced object 0xff1100000753f900 (size 16):",
        'kmemleak:   comm "ftracetest", pid 105, jiffies 4294894635',
        "kmemleak:   backtrace (crc 3598b01f):",
        "kmemleak:     __kmalloc_node_track_caller_noprof+0x2f3/0x620",
        "kmemleak:     kstrdup+0x32/0x90",
        "kmemleak:     alloc_trace_kprobe+0xc7/0x430",
        "kmemleak:   ... and 16 more object(s) with the same backtrace",
        "kmemleak: 17 new suspected memory leaks (see /sys/kernel/debug/kmemleak)"]


def _scan(tmp_path: pathlib.Path, scan: dict):
    """One case, then the leak scan, its answer scripted by `scan`."""
    path = tmp_path / "script.json"
    path.write_text(json.dumps([{"output": _tap("ok 1 adds and removes")}, scan]))
    detector = SplatDetector()
    runner = GuestRunner(lambda: ConsoleSession([sys.executable, str(GUEST), str(path), "-append", "console=ttyS0"],
                                                io.BytesIO(), detector.feed),
                         detector, Progress(io.StringIO()), 10.0, 10.0, None, leak_scan=True)
    try:
        (case,) = runner.run_case(CaseSpec("kprobe/events.tc", "kprobe", "/kto/ftrace/test.d/kprobe/events.tc"),
                                  1, 1, "/tmp/kto/1")
        return case, runner.scan_for_leaks(), detector
    finally:
        runner.kill()


def test_the_leak_scan_reads_leaks_printed_after_its_command_ended(tmp_path):
    """A console's printer thread can print kmemleak's report after the write returned:
    the scan reads the console until it is quiet, and the leak has no case."""
    case, scan, detector = _scan(tmp_path, {"after_end": LEAK})
    assert case.status == "PASS" and not case.splats
    assert scan is not None and scan.error is None and scan.seconds < 10
    (leak,) = detector.splats
    assert (leak.kind, leak.title, leak.count, leak.case) == (
        "leak", "kmemleak: memory leak in alloc_trace_kprobe (kstrdup, size 16)", 17, None)


def test_a_scan_kmemleak_refuses_says_why_and_a_kernel_without_it_is_not_asked(tmp_path):
    _, scan, detector = _scan(tmp_path, {"output": ["sh: write error: Operation not permitted"], "rc": 1})
    assert scan is not None and detector.splats == []
    assert scan.error == ("the scan command exited 1 (sh: write error: Operation not permitted): "
                          "kmemleak may have disabled itself (see console.log)")
    runner = GuestRunner(lambda: None, SplatDetector(), Progress(io.StringIO()), 10.0, 10.0, None)
    assert runner.scan_for_leaks() is None
