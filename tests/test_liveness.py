"""A silent guest is asked whether its kernel is alive (a sysrq over the serial line) and
given up on only when it answers nothing: the steps, QEMU's register dumps read for each
vCPU's pc, and a pc named against a real object's symbols. The real hang is in
tests/faults (LKDTM HARDLOCKUP on every CPU of a real guest)."""
import shutil
import subprocess
import time

import pytest

from orchestrator.arches import get_arch
from orchestrator.kernel import symbolize
from orchestrator.suites.splats import SplatDetector, splat_key
from orchestrator.vm import qmp
from orchestrator.vm.console import Liveness
from orchestrator.vm.transport import GuestHung, GuestTimeout


def test_a_silent_kernel_is_asked_then_given_up_on_when_nothing_answers():
    live = Liveness(quiet=10, answer=15, probes=2)
    last_output = 100.0
    assert live.next_step(105, last_output) is None          # quiet, not yet for long
    assert live.next_step(110, last_output) == "probe"
    live.asked_at.append(110)
    assert live.next_step(124, last_output) is None          # the answer has 15 s
    assert live.next_step(125, last_output) == "probe"
    live.asked_at.append(125)
    assert live.next_step(139, last_output) is None
    assert live.next_step(140, last_output) == "hung"        # two asks, no answer
    # What the session raises then is a timeout to every caller, and says what happened.
    hung = GuestHung(40.2, 2, "CPU#0\n pc       ffffffff806d0d78\n")
    assert isinstance(hung, GuestTimeout) and hung.partial == []
    assert str(hung) == "the kernel stopped answering: nothing for 40.2s, none of 2 sysrq(s) answered"


def test_an_answer_clears_the_asks_and_a_long_silent_case_is_asked_less_often():
    live = Liveness(quiet=10, answer=15, probes=2, most_quiet=60)
    assert live.next_step(10, 0) == "probe"
    live.asked_at.append(10)
    # The kernel answered at 10.2: alive; the next ask waits 20 s of silence, then 40, 60.
    assert live.next_step(20, 10.2) is None and live.asked_at == []
    assert live.next_step(30.1, 10.2) is None
    assert live.next_step(30.2, 10.2) == "probe"
    for answered, quiet in ((30.5, 40), (71, 60), (131.5, 60)):
        live.asked_at.append(answered - 0.3)
        assert live.next_step(answered + quiet - 0.1, answered) is None
        assert live.next_step(answered + quiet, answered) == "probe"


def test_each_vcpu_s_pc_is_read_from_qemu_s_register_dump(data_dir):
    # Captured from the hangs themselves: x86_64's and arm64's LKDTM lockup on both CPUs
    # (QEMU 7.2: RIP= among the general registers, PC= before X00=), riscv64's
    # multiple_kprobes.tc (QEMU 10: a "pc" row).
    x86 = qmp.program_counters((data_dir / "x86_64-7.2.12-hang-registers.txt").read_text())
    assert [cpu for cpu, _ in x86] == [0, 1] and x86[0][1] == x86[1][1]   # both in one spin loop
    assert all(pc >= 0xffffffff80000000 for _, pc in x86)                  # in the kernel's text
    arm64 = qmp.program_counters((data_dir / "arm64-7.2.12-hang-registers.txt").read_text())
    assert arm64 == [(0, 0xffff80008045410c), (1, 0xffff80008045410c)]    # not X00's address
    riscv = qmp.program_counters((data_dir / "riscv64-7.2.12-hang-registers.txt").read_text())
    assert riscv == [(0, 0xffffffff806d0d78), (1, 0xffffffff806d2e54)]
    # The other targets' shapes, as QEMU's cpu_dump_state prints them (no capture: no such
    # QEMU on this host): loongarch64 "PC=", s390x the PSW's address; and a dump without
    # CPU#n headers.
    assert qmp.program_counters("CPU#0\nPSW=mask 0704c00180000000 addr 0000000000123456 cc 00\n") == \
        [(0, 0x123456)]
    assert qmp.program_counters(" PC=9000000000220abc FCSR0 0x00000000\n") == [(0, 0x9000000000220abc)]
    assert qmp.program_counters("(QEMU's monitor did not answer: timed out)") == []


def test_a_pc_is_named_as_a_frame_against_the_object_s_symbols(tmp_path):
    src = tmp_path / "f.c"
    src.write_text("int first(int x) { return x * 3 + 1; }\n"
                   "int second(int x) { for (int i = 0; i < x; i++) x ^= i * 7; return x; }\n")
    obj = tmp_path / "f.so"
    subprocess.run(["gcc", "-O1", "-shared", "-fPIC", "-o", str(obj), str(src)], check=True)
    sym = symbolize.Symbolizer(obj, get_arch("x86_64"), [])
    (first, first_size), = sym.symbols()["first"]
    (second, second_size), = sym.symbols()["second"]
    assert sym.name(second) == f"second+0x0/{second_size:#x}"
    assert sym.name(second + 2) == f"second+0x2/{second_size:#x}"
    assert sym.name(first + first_size - 1) == f"first+{first_size - 1:#x}/{first_size:#x}"
    # Below the first function, or past the last: no name (a module's address, KASLR).
    assert sym.name(0) is None
    assert sym.name(max(first + first_size, second + second_size) + 0x100000) is None


def test_a_hang_is_one_report_wherever_its_cpus_happen_to_be(data_dir):
    """Two hangs of the same case (a base run and a series run) whose CPUs stopped in
    different places are the same report: a comparison must not call the series' hang new.
    Where they were is in the report's lines (decoded like any frame) and QEMU's registers."""
    registers = (data_dir / "riscv64-7.2.12-hang-registers.txt").read_text()
    reports = []
    for names in (["queued_spin_lock_slowpath+0x70/0x498", "handle_exception+0xac/0x1c4"],
                  ["multi_cpu_stop+0x10/0x200", None]):
        detector = SplatDetector()
        detector.current_case = "kprobe/multiple_kprobes.tc"
        cpus = [(cpu, pc, name) for (cpu, pc), name in zip(qmp.program_counters(registers), names)]
        reports.append(detector.hang(40.2, 2, cpus, registers))
        assert detector.splats == [reports[-1]]
    first, second = reports
    assert first.kind == "hang" and splat_key(first) == splat_key(second)
    assert first.case == "kprobe/multiple_kprobes.tc"
    assert first.lines[:3] == ["no console output for 40.2s, no answer to 2 sysrq(s) over the serial line",
                               "pc : queued_spin_lock_slowpath+0x70/0x498 (CPU#0)",
                               "pc : handle_exception+0xac/0x1c4 (CPU#1)"]
    assert second.lines[2] == "pc : 0xffffffff806d2e54 (CPU#1)"    # vmlinux did not name it
    assert "QEMU's info registers -a:" in first.lines and len(first.lines) <= 120
    # The pcs are frames the decoder reads, each at its own address (not a return address).
    frames = symbolize.frames_of(first.lines)
    assert [(f.func, f.exact) for f in frames] == [("queued_spin_lock_slowpath", True), ("handle_exception", True)]


@pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="no qemu-system-x86_64 (make deps)")
def test_the_monitor_sends_a_break_and_reads_every_vcpu_of_a_real_qemu():
    """A real QEMU (stopped before its first instruction, no kernel needed): the break
    reaches its serial0, and the dump names each of its two vCPUs' pc (the reset vector)."""
    monitor = qmp.Monitor()
    proc = subprocess.Popen(["qemu-system-x86_64", "-M", "q35", "-smp", "2", "-S", "-nodefaults", "-display",
                             "none", "-serial", "null", *monitor.argv()],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not monitor.path.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        monitor.send_break()
        assert qmp.program_counters(monitor.registers()) == [(0, 0xfff0), (1, 0xfff0)]
        with pytest.raises(qmp.QmpError, match="refused chardev-send-break"):
            monitor.send_break("no-such-chardev")
    finally:
        proc.kill()
        proc.wait()
        monitor.close()
    assert not monitor.dir.exists()
    # A QEMU that is gone: one QmpError, not a hang.
    with pytest.raises(qmp.QmpError, match="did not answer"):
        monitor.registers()
