"""The console protocol, the suite runner and the splat detector, driven by real
console output: each test replays a console.log captured from a real TCG guest run
through a process that prints it like QEMU would, then stays silent."""
from __future__ import annotations

import io
import pathlib
import re

import msgspec
import pytest

from orchestrator import model
from orchestrator.vm.console import ConsoleSession
from orchestrator.vm.transport import GuestTimeout
from orchestrator.progress import Progress
from orchestrator.results.recorder import failures_after_poisoning_splat
from orchestrator.suites.splats import SplatDetector
from orchestrator.suites.runner import PROGRAM_SUITES, CaseSpec, GuestRunner

from conftest import read_log, split_boots

NONET = "x86_64-6.12.117-nonet.console.log"
OOPS = "x86_64-6.12.117-tprobe-oops.console.log"
# A run's record for the replayed cases and splats to stand in.
RUN = model.RunRecord(run_id="20261206-010101-x86_64-1", started_at="2026-12-06T01:01:01+00:00",
                      arch="x86_64", host=model.Host(machine="x86_64", kernel="6.1"),
                      kernel=model.Kernel(version="6.12.117", origin="test", path="/tmp/linux", tree_id="git:0"),
                      versions=model.Versions(orchestrator="0", qemu="QEMU"), stages=model.Stages(),
                      cases=[], splats=[], schema_version=1, state="running", finished_at=None, series=None,
                      suites=[], fragments=[], accel=None, config=None, taint=None, verdict=None, exit_code=None)


def _case_ids(data_dir: pathlib.Path, name: str) -> list[str]:
    """The case files the captured run ran, in order (saved beside its console.log)."""
    return (data_dir / name.replace(".console.log", ".cases")).read_text().split()


def _spec(case_id: str) -> CaseSpec:
    suite, name = case_id.split("/", 1)
    if suite in PROGRAM_SUITES:
        return CaseSpec(case_id, suite, f"/kto/bin/{suite}", ("--prefix", "sys_", name))
    return CaseSpec(case_id, suite, f"/kto/ftrace/test.d/{case_id}")


def _replayer(tmp_path: pathlib.Path, boots: list[bytes]):
    """start_guest for GuestRunner: boot N prints the Nth captured boot, with its nonce,
    reading what the host sends as a guest does."""
    sessions = []

    def start() -> ConsoleSession:
        part = boots[len(sessions)]
        f = tmp_path / f"boot{len(sessions)}.log"
        f.write_bytes(part)
        # What the host sends is read (and dropped) while the log is printed: a pty whose
        # input nobody reads blocks the host's writes once its buffer is full. (sh gives a
        # background job /dev/null as stdin: the pty goes to it as fd 3.)
        s = ConsoleSession(["sh", "-c", 'exec 3<&0; cat <&3 >/dev/null & cat "$0"; wait', str(f)],
                           io.BytesIO(), detector.feed)
        # The captured markers' secrets, one per command (older logs: the same for all).
        tokens = iter([t.decode() for t in re.findall(rb"KTO:BEGIN:([0-9a-f]+):\d+", part)])
        s.new_token = lambda tokens=tokens: next(tokens)
        # A captured log with no fences: read up to the END marker only.
        s.fence_seconds = 0 if b"KTO:FENCE:" not in part else 5.0
        sessions.append(s)
        return s

    detector = SplatDetector()
    return start, detector, sessions


def _run_all(tmp_path, data_dir, name, case_timeout=5.0):
    console = read_log(data_dir / name)
    boots = split_boots(console)
    start, detector, sessions = _replayer(tmp_path, boots)
    runner = GuestRunner(start, detector, Progress(io.StringIO()), case_timeout, 10.0, None)
    session = runner.boot()
    session.run("facts", 10)  # the pipeline's first command (busybox version, /proc/version)
    results = []
    specs = [_spec(i) for i in _case_ids(data_dir, name)]
    for n, spec in enumerate(specs, 1):
        results += runner.run_case(spec, n, len(specs), f"/tmp/kto/{n}")
    runner.kill()
    return results, detector, runner


def _counts(results) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in results:
        out[r.status] = out.get(r.status, 0) + 1
    return out


def test_replay_of_a_clean_run(tmp_path, data_dir):
    results, detector, runner = _run_all(tmp_path, data_dir, NONET)
    by_id = {r.id: r for r in results}
    assert len(results) == 43
    counts = _counts(results)
    # What this kernel (6.12.117, no NET, no sample modules) really did.
    assert counts == {"PASS": 38, "FAIL": 2, "UNRESOLVED": 2, "UNSUPPORTED": 1}
    assert by_id["dynevent/add_remove_kprobe.tc"].status == "PASS"
    assert by_id["kprobe/kprobe_non_uniq_symbol.tc"].status == "UNSUPPORTED"
    assert by_id["kprobe/kretprobe_maxactive.tc"].reason == "sh: write error: Invalid argument"
    assert "CONFIG_SAMPLE_TRACE_PRINTK" in by_id["kprobe/kprobe_module.tc"].reason
    assert by_id["kprobe/kprobe_module.tc"].log.startswith("+ . /kto/ftrace/test.d/kprobe/kprobe_module.tc")
    assert by_id["dynevent/add_remove_kprobe.tc"].log == ""
    assert all(r.taint_after == 0 for r in results)
    assert detector.splats == []
    assert runner.boots == 1


def test_replay_of_a_run_where_the_kernel_oopsed(tmp_path, data_dir):
    results, detector, runner = _run_all(tmp_path, data_dir, OOPS, case_timeout=3.0)
    by_id = {r.id: r for r in results}
    assert len(results) == 43
    hung = by_id["dynevent/add_remove_tprobe_module.tc"]
    # The test printed "not ok", then its shell never came back: ERROR, the Oops named as
    # the cause first, then what the harness saw.
    assert hung.status == "ERROR"
    assert hung.reason.startswith("BUG: kernel NULL pointer dereference, address: 0000000000000026 (then: ")
    assert "the test reported FAIL, then no end of the case" in hung.reason
    kinds_titles = [(s.kind, s.title) for s in hung.splats]
    assert kinds_titles == [
        ("warning", "WARNING: CPU: 1 PID: 1017 at kernel/trace/ftrace.c:387 "
                    "__unregister_ftrace_function+0x92/0xa0"),
        ("bug", "BUG: kernel NULL pointer dereference, address: 0000000000000026")]
    assert any("trace_fprobe_release" in line for line in hung.splats[1].lines)
    # The guest was restarted and every later case still ran.
    assert runner.boots == 2
    assert by_id["dynevent/add_remove_uprobe.tc"].status == "PASS"
    assert by_id["kprobe/kretprobe_maxactive.tc"].status == "PASS"
    assert by_id["kprobe/kprobe_args_user.tc"].status == "FAIL"
    assert all(s.case == "dynevent/add_remove_tprobe_module.tc" for s in detector.splats)
    # The failure after the Oops ran in a fresh boot: it is not blamed on the Oops.
    run = msgspec.structs.replace(RUN, cases=results, splats=detector.splats)
    cause = failures_after_poisoning_splat(run)
    assert cause.kind == "bug" and cause.case == "dynevent/add_remove_tprobe_module.tc"
    assert by_id["kprobe/kprobe_args_user.tc"].boot == 2
    assert cause.failing_after == []


def test_a_guest_that_goes_silent_times_out(tmp_path, data_dir):
    console = (data_dir / NONET).read_bytes()
    boot = console[:console.index(b"KTO:READY:")] + b"KTO:READY:6.12.117+:0\n"
    f = tmp_path / "boot.log"
    f.write_bytes(boot)
    s = ConsoleSession(["sh", "-c", 'cat "$0"; exec cat >/dev/null', str(f)], io.BytesIO())
    s.start()
    s.wait_ready(10)
    assert s.kernel_release == "6.12.117+"
    with pytest.raises(GuestTimeout):
        s.run("true", 1.0)
    s.kill()
    assert not s.alive


def test_replay_of_arm64_where_the_tree_has_no_fprobe(tmp_path, data_dir):
    results, detector, runner = _run_all(tmp_path, data_dir, "arm64-6.12.117.console.log")
    by_id = {r.id: r for r in results}
    counts = _counts(results)
    assert counts == {"PASS": 32, "FAIL": 2, "UNSUPPORTED": 10}
    fprobe = by_id["dynevent/add_remove_fprobe.tc"]
    assert fprobe.status == "UNSUPPORTED"
    assert fprobe.reason.startswith('Required feature pattern "f[:[<group>/][<event>]]')
    assert by_id["tcscripts/fprobe_add_remove_cycles.tc"].status == "UNSUPPORTED"
    assert detector.splats == [] and runner.boots == 1


def test_replay_of_s390x_where_a_kprobe_hangs_the_guest(tmp_path, data_dir):
    results, detector, runner = _run_all(tmp_path, data_dir, "s390x-6.12.117.console.log",
                                         case_timeout=3.0)
    by_id = {r.id: r for r in results}
    hung = by_id["kprobe/kprobe_insn_boundary.tc"]
    assert hung.status == "ERROR"
    assert [s.kind for s in hung.splats] == ["stall"]
    assert hung.splats[0].title == "rcu: INFO: rcu_sched self-detected stall on CPU"
    assert any("kprobe_exceptions_notify" in l for l in hung.splats[0].lines)
    # The test said PASS, but WARNs fired while it ran: it is not reported as a pass.
    tprobe = by_id["dynevent/add_remove_tprobe_module.tc"]
    assert tprobe.status == "FAIL" and tprobe.test_status == "PASS"
    assert {s.title.split(" at ")[1].split()[0] for s in tprobe.splats} == {
        "kernel/trace/ftrace.c:387", "kernel/tracepoint.c:406"}
    assert runner.boots == 2
    assert by_id["kprobe/kprobe_module.tc"].status == "PASS"  # the first case after the restart
    assert len(results) == 44


def test_replay_of_riscv64_where_entry_kprobes_are_refused(tmp_path, data_dir):
    results, detector, runner = _run_all(tmp_path, data_dir, "riscv64-6.12.117.console.log")
    by_id = {r.id: r for r in results}
    counts = _counts(results)
    assert counts == {"PASS": 4, "FAIL": 27, "UNSUPPORTED": 13}
    # 6.12 riscv64 has no KPROBES_ON_FTRACE and its ftrace site is the function entry.
    assert by_id["dynevent/add_remove_kprobe.tc"].reason == "sh: write error: Invalid argument"
    assert "+ echo 'p:myevent1 kernel_clone'" in by_id["dynevent/add_remove_kprobe.tc"].log
    # The guest's awk (busybox built by zig/musl) crashed: a userland fault, not a splat.
    assert by_id["dynevent/add_remove_uprobe.tc"].reason == "Segmentation fault"
    assert detector.splats == []
    assert by_id["dynevent/add_remove_synth.tc"].status == "UNSUPPORTED"  # no HIST_TRIGGERS


def test_a_guest_that_does_not_come_back_makes_the_case_error(tmp_path, data_dir):
    """The kernel part of a real boot, cut before /init's READY line, then silence."""
    console = read_log(data_dir / NONET)
    f = tmp_path / "no-init.log"
    f.write_bytes(console[:console.index(b"Run /init as init process")])
    detector = SplatDetector()
    runner = GuestRunner(lambda: ConsoleSession(["sh", "-c", 'cat "$0"; exec cat >/dev/null', str(f)],
                                                io.BytesIO(), detector.feed),
                         detector, Progress(io.StringIO()), 5.0, 1.0, None)
    (result,) = runner.run_case(CaseSpec("kprobe/profile.tc", "kprobe", "/x.tc"), 1, 1, "/tmp/kto/1")
    assert result.status == "ERROR"
    # Its first boot: no previous case to blame.
    assert result.reason == "this guest did not boot"
    assert "Freeing unused kernel image" in result.log
    assert runner.session is None


def test_replay_of_the_guest_programs_and_tcscripts_on_x86_64(tmp_path, data_dir):
    results, detector, runner = _run_all(tmp_path, data_dir, "x86_64-6.12.117-programs.console.log")
    assert [(r.id, r.status) for r in results if r.status != "PASS"] == []
    ids = [r.id for r in results]
    assert len(ids) == 15 and "kprobe_multi/cookies" in ids and "tcscripts/fprobe_args_six.tc" in ids
    cookies = next(r for r in results if r.id == "kprobe_multi/cookies")
    assert cookies.suite == "kprobe_multi" and cookies.description == "kprobe_multi/cookies"
    assert detector.splats == [] and runner.boots == 1


def test_replay_of_the_guest_programs_on_arm64_without_fprobe(tmp_path, data_dir):
    results, detector, runner = _run_all(tmp_path, data_dir, "arm64-6.12.117-programs.console.log")
    multi = [r for r in results if r.suite == "kprobe_multi"]
    assert len(multi) == 9
    # EOPNOTSUPP from link create: SKIP with the reason, never PASS or FAIL.
    assert {(r.status, r.reason) for r in multi} == {("SKIP", "kernel has no fprobe for kprobe_multi")}
    assert {r.status for r in results if r.suite == "tcscripts"} == {"UNSUPPORTED"}


def test_a_guest_program_killed_by_a_signal_is_an_error_with_the_signal(tmp_path, data_dir):
    """Real: the first loongarch64 build of kprobe_multi used LSX, which QEMU 7.2 lacks."""
    results, detector, runner = _run_all(tmp_path, data_dir, "loongarch64-6.12.117-sigill.console.log")
    assert len(results) == 9
    assert {r.status for r in results} == {"ERROR"}
    assert results[0].reason == ("/kto/bin/kprobe_multi exited 132 (SIGILL) after 0 KTAP results "
                                 "(1 expected): Illegal instruction")
    # What it printed before dying is kept.
    assert "# sys_getpid at 9000000000239340" in results[1].log


def test_replay_of_a_panic_in_interrupt_under_function_graph(tmp_path, data_dir):
    """Real, once in about eight x86_64 runs under TCG: switching the function_graph tracer
    on while fprobes are attached ends in an int3 Oops at idle_cpu+0x1 and a panic."""
    results, detector, runner = _run_all(tmp_path, data_dir, "x86_64-6.12.117-int3-oops.console.log",
                                         case_timeout=3.0)
    by_id = {r.id: r for r in results}
    crashed = by_id["tcscripts/fprobe_under_function_graph.tc"]
    # (QEMU exited there; the replay stays silent instead, so here the case times out.)
    assert crashed.status == "ERROR"
    assert [(s.kind, s.title) for s in crashed.splats] == [
        ("oops", "Oops: int3: 0000 [#1] SMP"),
        ("panic", "Kernel panic - not syncing: Fatal exception in interrupt")]
    # The case after it ran on the next boot.
    ids = [r.id for r in results]
    after = results[ids.index("tcscripts/fprobe_under_function_graph.tc") + 1]
    assert after.boot == crashed.boot + 1 and after.status == "PASS"


def _programs_run_with(tmp_path, data_dir, old: bytes, new: bytes):
    """The captured x86_64 guest-program run, with one stretch of its console changed."""
    name = "x86_64-6.12.117-programs.console.log"
    edited = tmp_path / "data"
    edited.mkdir()
    log = read_log(data_dir / name)
    assert log.count(old) == 1
    (edited / name).write_bytes(log.replace(old, new))
    (edited / name.replace(".console.log", ".cases")).write_bytes(
        (data_dir / name.replace(".console.log", ".cases")).read_bytes())
    results, _, _ = _run_all(tmp_path, edited, name)
    return {r.id: r for r in results}


def test_a_printk_cutting_a_not_ok_line_is_no_pass(tmp_path, data_dir):
    # A kernel message printed in the middle of the program's "not ok" line: the line goes
    # on after the message. Taking the message's line out whole would leave "ok 1 ...".
    by_id = _programs_run_with(
        tmp_path, data_dir,
        b"ok 1 kprobe_multi/cookies\r\r\nKTO:END:5f5ab5e1:11:0:0",
        b"not [   19.100000] random: crng init done\r\r\nok 1 kprobe_multi/cookies\r\r\nKTO:END:5f5ab5e1:11:1:0")
    assert by_id["kprobe_multi/cookies"].status == "FAIL"
    assert by_id["kprobe_multi/attach_by_symbol"].status == "PASS"


def test_a_program_whose_ok_disagrees_with_its_exit_status_is_an_error(tmp_path, data_dir):
    # The guest programs exit 0 after "ok" and 1 after "not ok": a lost "not " (a garbled
    # console) must not read as a pass when the exit status says otherwise.
    by_id = _programs_run_with(
        tmp_path, data_dir,
        b"ok 1 kprobe_multi/cookies\r\r\nKTO:END:5f5ab5e1:11:0:0",
        b"ok 1 kprobe_multi/cookies\r\r\nKTO:END:5f5ab5e1:11:1:0")
    case = by_id["kprobe_multi/cookies"]
    assert case.status == "ERROR"
    assert "printed ok" in case.reason and "exited 1" in case.reason


def test_replay_of_a_7_2_run(tmp_path, data_dir):
    """Linux 7.2.12 on x86_64 (Debian's linux-source-7.2), the default suites: the READY
    line carries the boot's nonce, and the statuses are those of the run."""
    name = "x86_64-7.2.12.console.log"
    results, detector, runner = _run_all(tmp_path, data_dir, name)
    by_id = {r.id: r for r in results}
    assert len(results) == 63 and _counts(results) == {"PASS": 58, "FAIL": 3, "UNRESOLVED": 1, "UNSUPPORTED": 1}
    # This run's config had no CONFIG_EPROBE_EVENTS (7.2 made it a prompt that allnoconfig
    # turns off; kconfigs/tracing.config asks for it since): the eprobe cases fail. This
    # capture predates run-case's copy of error_log, so the reason is the shell's alone.
    for case in ("dynevent/add_remove_eprobe.tc", "dynevent/test_duplicates.tc"):
        assert by_id[case].status == "FAIL" and by_id[case].reason == "sh: write error: Invalid argument"
    assert by_id["dynevent/add_remove_uprobe.tc"].reason == "No readelf found. skipped."
    # fprobe, tprobe, BTF arguments and the BPF checks all run and pass on 7.2.
    for case in ("dynevent/add_remove_fprobe_repeat.tc", "dynevent/fprobe_entry_arg.tc",
                 "tcscripts/fprobe_args_six.tc", "kprobe_multi/session"):
        assert by_id[case].status == "PASS", case
    assert detector.splats == [] and runner.boots == 1
    assert runner.session is None or runner.session.kernel_release == "7.2.12+"


def test_a_refused_probe_definition_is_explained_by_the_kernels_error_log(tmp_path, data_dir):
    """7.2.12 on x86_64 without CONFIG_EPROBE_EVENTS, dynevent only, with run-case's copy of
    tracefs's error_log after each case that did not pass: the reason names what the
    kernel said and which command it refused, not only the shell's "Invalid argument"."""
    results, detector, _ = _run_all(tmp_path, data_dir, "x86_64-7.2.12-eprobes-off.console.log")
    by_id = {r.id: r for r in results}
    assert _counts(results) == {"PASS": 17, "FAIL": 3, "UNRESOLVED": 1}
    refused = by_id["dynevent/add_remove_eprobe.tc"]
    assert refused.reason.startswith("sh: write error: Invalid argument (kernel: dynevent: No matching "
                                     "dynamic event type at 'e:eprobe_chdir' in 'e:eprobe_chdir syscalls/")
    assert "error_log: dynevent: error: No matching dynamic event type" in refused.log
    assert "kernel: dynevent: No matching dynamic event type at 'e:egroup/eevent'" in \
        by_id["dynevent/test_duplicates.tc"].reason
    # A case with nothing in error_log keeps its own reason unchanged.
    assert by_id["dynevent/add_remove_uprobe.tc"].reason == "No readelf found. skipped."
    # The error_log's lines are shown without their timestamps: none was taken for kernel output.
    assert detector.splats == []


def test_replay_of_a_riscv64_7_2_run(tmp_path, data_dir):
    """riscv64 on 7.2.12 (gcc 12, no compressed instructions): fprobe, the project's cases
    and kprobe_multi run and pass there (all UNSUPPORTED/SKIP on 6.12); multiple_kprobes.tc
    ran out its time (ERROR, guest restarted: the second boot)."""
    results, detector, runner = _run_all(tmp_path, data_dir, "riscv64-7.2.12.console.log")
    by_id = {r.id: r for r in results}
    assert _counts(results) == {"PASS": 59, "FAIL": 1, "ERROR": 1, "UNSUPPORTED": 2}
    for case in ("dynevent/add_remove_fprobe.tc", "dynevent/add_remove_tprobe.tc",
                 "tcscripts/fprobe_args_six.tc", "tcscripts/btf_struct_fields.tc", "kprobe_multi/session"):
        assert by_id[case].status == "PASS", case
    assert by_id["kprobe/multiple_kprobes.tc"].status == "ERROR"
    assert "Segmentation fault" in by_id["dynevent/add_remove_uprobe.tc"].reason
    assert runner.boots == 2 and detector.splats == []


def test_console_log_has_unix_line_ends_however_the_chunks_fall(data_dir):
    """A real console's \r\r\n and \r\n written as \n whatever the read sizes; a lone \r stays."""
    from orchestrator.vm.console import UnixLineEnds
    raw = (data_dir / "arm64-6.12.117.console.log").read_bytes()[:200_000]
    assert b"\r\r\n" in raw or b"\r\n" in raw     # as QEMU printed it
    raw += b"progress 10%\rprogress 20%\r\ntail\r\r\n"
    expected = re.sub(rb"\r+\n", b"\n", raw)
    for size in (1, 2, 3, 7, 4096):
        to_unix = UnixLineEnds()
        out = b"".join(to_unix(raw[i:i + size]) for i in range(0, len(raw), size))
        assert out == expected, size
    assert b"\r\n" not in expected and expected.endswith(b"tail\n")



LOONGARCH_CUT = "loongarch64-7.2.12-qemu7.2-begin-cut.console.log"


def _first_command_of(tmp_path, console: bytes):
    """The pipeline's first command run against a captured boot (its one secret known)."""
    f = tmp_path / "boot.log"
    f.write_bytes(console)
    session = ConsoleSession(["sh", "-c", 'exec 3<&0; cat <&3 >/dev/null & cat "$0"; wait', str(f)],
                             io.BytesIO(), lambda line: None)
    session.new_token = lambda: "81bd9442df9c27baf74c1a7fd5f84adb"
    session.start()
    try:
        session.wait_ready(10)
        return session.run("busybox 2>&1 | head -n 1; cat /proc/version", 10)
    finally:
        session.kill()


def test_a_kernel_message_cutting_the_begin_marker_does_not_lose_the_command(tmp_path, data_dir):
    """loongarch64 7.2 on QEMU 7.2 (the built-in route, one vCPU): the first command's own
    fence, printed by the kernel while the UART still sent the BEGIN line, cut that line in
    two. The session waited for a BEGIN it never saw whole and the guest "did not boot"."""
    console = read_log(data_dir / LOONGARCH_CUT)
    assert b"KTO:BEGIN:81bd94[    1.322067] KTO:FENCE:" in console   # the captured cut
    result = _first_command_of(tmp_path, console)
    assert result.exit_status == 0
    assert result.output[0].startswith("BusyBox v1.35.0")
    assert result.output[1].startswith("Linux version 7.2.12+")
    assert result.guest_seconds == pytest.approx(1.32 - 1.30, abs=0.005)


def test_a_kernel_message_cutting_the_end_marker_does_not_lose_the_command(tmp_path, data_dir):
    # The same cut at the other end: the END line goes on after the kernel's line.
    console = read_log(data_dir / LOONGARCH_CUT)
    end = b"KTO:END:81bd9442df9c27baf74c1a7fd5f84adb:1:0:0:1.32"
    assert console.count(end) == 1
    console = console.replace(end, b"KTO:END:81bd9442df9c[    1.330000] random: crng init done\r\r\n"
                                   b"27baf74c1a7fd5f84adb:1:0:0:1.32")
    result = _first_command_of(tmp_path, console)
    assert (result.exit_status, len(result.output)) == (0, 2)
    assert result.output[1].startswith("Linux version 7.2.12+")
    assert result.guest_seconds == pytest.approx(0.02, abs=0.005)
