"""The splat detector on real console output and on the catalogue's edge cases."""
from orchestrator.suites.splats import SplatDetector, classify

OOPS = "x86_64-6.12.117-tprobe-oops.console.log"
NONET = "x86_64-6.12.117-nonet.console.log"


def _feed(text: str, case: str | None = None) -> SplatDetector:
    d = SplatDetector()
    d.current_case = case
    for line in text.splitlines():
        d.feed(line.rstrip("\r"))
    d.flush()
    return d


def test_clean_run_has_no_splat(data_dir):
    assert _feed((data_dir / NONET).read_text(errors="replace")).splats == []


def test_warning_then_oops_are_two_titled_reports(data_dir):
    d = _feed((data_dir / OOPS).read_text(errors="replace"), case="dynevent/add_remove_tprobe_module.tc")
    assert [(s.kind, s.title) for s in d.splats] == [
        ("warning", "WARNING: CPU: 1 PID: 1017 at kernel/trace/ftrace.c:387 "
                    "__unregister_ftrace_function+0x92/0xa0"),
        ("bug", "BUG: kernel NULL pointer dereference, address: 0000000000000026")]
    warn, bug = d.splats
    assert warn.lines[0] == "------------[ cut here ]------------"
    assert warn.lines[-1].startswith("---[ end trace")
    assert any(l.startswith("RIP: 0010:trace_fprobe_release") for l in bug.lines)
    assert warn.kernel_time == 12.986676
    # The TSC watchdog messages later in that log are not splats.
    assert len(d.splats) == 2


def test_only_kernel_lines_count():
    d = _feed("BUG: this is a test printing the word\n"
              "[    5.000000] trace_kprobe: Could not probe notrace function _raw_spin_lock\n")
    assert d.splats == []


def test_repeated_stall_reports_fold_into_one_with_a_count():
    lines = []
    for t in (30.0, 51.0, 72.0):
        lines += [f"[{t:12.6f}] rcu: INFO: rcu_sched self-detected stall on CPU",
                  f"[{t + 0.1:12.6f}] rcu:     0-....: (5250 ticks this GP) idle=1234",
                  f"[{t + 0.2:12.6f}] Comm: ftracetest"]
    d = _feed("\n".join(lines), case="kprobe/kprobe_args.tc")
    assert len(d.splats) == 1
    assert d.splats[0].kind == "stall" and d.splats[0].count == 3


def test_ftrace_bug_header_keeps_its_kind():
    d = _feed("[   1.000000] ------------[ ftrace bug ]------------\n"
              "[   1.000001] ftrace failed to modify\n"
              "[   1.000002] [<9000000000237f00>] kernel_clone+0x0/0x300\n"
              "[   1.000003] actual:   2c:00:15:00\n")
    assert [(s.kind, s.title) for s in d.splats] == [("ftrace-bug", "ftrace failed to modify")]


def test_catalogue_entries():
    assert classify("Kernel panic - not syncing: sysrq triggered crash")[0] == "panic"
    assert classify("watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [sh:1]")[0] == "stall"
    assert classify("WARNING: possible recursive locking detected")[0] == "lockdep"
    assert classify("Unable to handle kernel paging request at virtual address 0")[0] == "oops"
    assert classify("kretprobe: Return address not found, not execute handler.")[0] == "rethook"
    assert classify("Freeing unused kernel image (initmem) memory: 964K") is None


def test_loongarch64_ftrace_bug_is_one_report_titled_by_its_cause(data_dir):
    from conftest import read_log
    text = read_log(data_dir / "loongarch64-6.12.117-ftrace-bug.console.log").decode(errors="replace")
    d = _feed(text, case="kprobe/kprobe_insn_boundary.tc")
    assert [(s.kind, s.title) for s in d.splats] == [("ftrace-bug", "ftrace failed to modify")]
    lines = d.splats[0].lines
    assert lines[0] == "------------[ ftrace bug ]------------"
    assert any("kernel_clone+0x0/0x380" in l for l in lines)
    assert any("WARNING: CPU: 0 PID: 5857 at kernel/trace/ftrace.c:2235 ftrace_bug" in l for l in lines)


def test_reason_skips_a_missing_exit_helper_and_names_the_check_before_it():
    # The shape ftracetest's `set -x` log takes when a case calls an exit helper that does
    # not exist (kprobe_eventname.tc called exit_failure): the shell's "not found" is the
    # failure path's own error, the grep before it is the check that failed.
    from orchestrator.suites import caselog
    log = "\n".join([
        "+ . /kto/ftrace/test.d/kprobe/kprobe_eventname.tc",
        "+ echo p:event1 vfs_read",
        "+ grep -q event1 kprobe_events",
        "+ exit_failure",
        "/kto/ftrace/test.d/kprobe/kprobe_eventname.tc: line 12: exit_failure: not found",
    ])
    assert caselog.reason(log, "FAIL") == "failed at: echo p:event1 vfs_read ; grep -q event1 kprobe_events"


def test_s390x_program_check_oops_is_a_splat(data_dir):
    # Captured on s390x (7.2.12, QEMU 10): kprobe_insn_boundary.tc left a breakpoint inside
    # an instruction of kernel_clone; s390's die() prints no "Oops", only the check's name.
    text = (data_dir / "s390x-7.2.12-qemu10-insn-boundary.console.log").read_text(errors="replace")
    d = _feed(text, case="kprobe/kprobe_insn_boundary.tc")
    # Three CPUs' worth of the same report (#1..#3 in this excerpt): one splat, counted.
    assert [(s.kind, s.title, s.count) for s in d.splats] == [("oops", "illegal operation: 0001 ilc:1 [#1]SMP", 3)]
    assert any("kernel_clone+0x42/0x478" in l for l in d.splats[0].lines)
    assert d.splats[0].case == "kprobe/kprobe_insn_boundary.tc"


def test_a_report_without_timestamps_is_found_by_its_header(data_dir):
    """The WARN and the BUG of the captured 6.12 log with their timestamps cut off (a case
    that wrote 0 to /sys/module/printk/parameters/time): the same two reports, titled the
    same; a test printing a lone "BUG:" or "WARNING:" word is still none."""
    import re
    text = (data_dir / OOPS).read_text(errors="replace")
    untimed = re.sub(r"\[\s*\d+\.\d+\]\s?", "", text)
    d = _feed(untimed, case="dynevent/add_remove_tprobe_module.tc")
    assert [(s.kind, s.title) for s in d.splats] == [
        ("warning", "WARNING: CPU: 1 PID: 1017 at kernel/trace/ftrace.c:387 "
                    "__unregister_ftrace_function+0x92/0xa0"),
        ("bug", "BUG: kernel NULL pointer dereference, address: 0000000000000026")]
    assert d.splats[0].kernel_time is None
    assert d.splats[0].location.as_dict() == {"file": "kernel/trace/ftrace.c", "line": 387}
    assert _feed("BUG: this is a test printing the word\nWARNING: something odd\n"
                 "echo kernel BUG at nowhere\n").splats == []


def test_the_same_report_on_two_guests_is_one_line_with_its_count(data_dir):
    """A WARN_ONCE fires once per guest: the summary, the merged summary and a comparison
    list it once, with how many times and during which cases."""
    from orchestrator.model import Splat
    from orchestrator.results import report
    from orchestrator.suites.splats import grouped
    title = "WARNING: kernel/trace/trace_kprobe.c:498 at __register_trace_kprobe+0x110/0x150, CPU#1: ftracetest/105"
    warn = [Splat(kind="warning", title=title.replace("CPU#1", f"CPU#{g}").replace("/105", f"/{100 + g}"),
                  kernel_time=1.0, console_line=10 * g, lines=[], case=f"kprobe/case{g}.tc") for g in (1, 2)]
    bug = Splat(kind="bug", title="BUG: kernel NULL pointer dereference, address: 0000000000000026",
                kernel_time=2.0, console_line=40, lines=[], count=2)
    (first, n, cases), (other, m, _) = grouped([*warn, bug])
    assert (first, n, cases) == (warn[0], 2, ["kprobe/case1.tc", "kprobe/case2.tc"])
    assert (other, m) == (bug, 2)
    from msgspec.structs import replace
    from orchestrator.results.recorder import load_run
    run = replace(load_run(data_dir / "ab-x86_64-v2" / "series"), splats=[*warn, bug])
    lines = [l for l in report.summary_text([run]).splitlines() if l.startswith("  splat ")]
    assert len(lines) == 2 and lines[0].startswith("  splat warning x2 during kprobe/case1.tc, kprobe/case2.tc")


KMEMLEAK = "x86_64-7.2.12-debug-kmemleak.console.log"


def test_each_kmemleak_backtrace_is_a_leak_named_by_its_allocating_function(data_dir):
    """A real debug kernel's scan after the suites (a series that frees neither the
    symbol nor the hit counter of a kprobe event; 30 events added and removed): two
    backtraces, each its own report, counted with the objects kmemleak folded into it."""
    d = _feed((data_dir / KMEMLEAK).read_text(errors="replace"))
    assert [(s.kind, s.title, s.count, s.case) for s in d.splats] == [
        ("leak", "kmemleak: memory leak in alloc_trace_kprobe (pcpu_alloc_noprof, size 8)", 30, None),
        ("leak", "kmemleak: memory leak in alloc_trace_kprobe (kstrdup, size 16)", 17, None)]
    percpu, symbol = d.splats
    assert percpu.lines[0] == "kmemleak: unreferenced object (percpu) 0xffffffff836d6c10 (size 8):"
    assert percpu.lines[-1] == "kmemleak:   ... and 29 more object(s) with the same backtrace"
    # The scan's own count line and the host's marker after it belong to no report.
    assert symbol.lines[-1] == "kmemleak:   ... and 16 more object(s) with the same backtrace"
    assert classify("kmemleak: Kernel memory leak detector initialized (mem pool available: 15561)") is None


def test_a_leak_without_a_frame_below_the_allocator_keeps_its_headline():
    d = _feed("[   26.1] kmemleak: unreferenced object 0xff11000007 (size 16):\n"
              "[   26.2] kmemleak:   backtrace (crc 0):\n"
              "[   26.3] kmemleak:     __kmalloc_noprof+0x2f3/0x620\n"
              "[   26.4] kmemleak: unreferenced object 0xff11000008 (size 32):\n"
              "[   26.5] kmemleak:     kstrdup+0x32/0x90\n"
              "[   26.6] kmemleak:     my_driver_probe+0x1/0x2\n"
              "[   26.7] other: the next message ends the report\n")
    assert [(s.title, len(s.lines)) for s in d.splats] == [
        ("kmemleak: unreferenced object 0xff11000007 (size 16):", 3),
        ("kmemleak: memory leak in my_driver_probe (kstrdup, size 32)", 3)]
