"""Drives a guest over its serial console with pexpect.

Everything QEMU prints is appended to console.log byte for byte (but for its line ends,
written as LF), and every line is passed to an observer (the splat detector) as it
arrives. Commands are framed by markers that carry a per-boot nonce and a sequence
number, so output and exit status are unambiguous even when the kernel prints to the
same console.
"""
from __future__ import annotations

import collections
import pathlib
import re
import shlex
import secrets
import time
from typing import BinaryIO, Callable

import pexpect

from .printk import command_part
from .qmp import Monitor, QmpError
from .transport import CommandResult, GuestDied, GuestHung, GuestTimeout

# KTO:READY:<boot nonce>:<release>:<taint>:<uptime>; the nonce comes from the kernel
# command line (kto.boot=, added at each start where QEMU passes one), so nothing printed
# before the guest read its command line can pass for READY. Images from before the
# nonce (and boot routes with a built-in command line) print no nonce field.
def _ready(nonce: str | None) -> re.Pattern[str]:
    if nonce:
        return re.compile(rf"KTO:READY:{nonce}:([^:\s]*):(\d+)(?::([\d.]+))?")
    return re.compile(r"KTO:READY:(?:[0-9a-f]*:)?([^:\s]*):(\d+)(?::([\d.]+))?")


BOOT_NONCE_ARG = "kto.boot"
# After its END marker, a command's kernel messages may still be on their way to the
# console (printk prints from a thread of its own on newer kernels): each command ends by
# writing a fence to /dev/kmsg, at KERN_EMERG so no console loglevel hides it, and the
# session reads the console up to it, so a splat is charged to the command during which
# the kernel logged it. A kernel that never shows it costs this wait once.
FENCE_SECONDS = 5.0

# A case may be silent for minutes (a sleep, a tracer slowed down by TCG): silence alone
# says nothing, and a kernel whose CPUs are all stuck prints nothing either (riscv64's
# multiple_kprobes.tc ran out its 300 s that way). After QUIET_BEFORE_PROBE_SECONDS of
# silence the host asks the kernel itself: a serial break and "h" is a sysrq, answered by
# the UART's interrupt handler ("sysrq: HELP : ...") whatever the case's processes do, and
# taken by it, never by the shell. A kernel that answers none of PROBES asks, each given
# ANSWER_SECONDS, has stopped: the case ends then, not at its timeout.
QUIET_BEFORE_PROBE_SECONDS = 10.0
MOST_QUIET_BEFORE_PROBE_SECONDS = 60.0
ANSWER_SECONDS = 15.0
PROBES = 2
# The kernel's answer to a sysrq (its pr_fmt), and how long the check after READY waits
# for the first: a kernel that takes no sysrq over its console (no break on the UART, or
# sysrq built out) is not asked during cases.
SYSRQ_ANSWER = re.compile(r"\bsysrq: ")
SYSRQ_CHECK_SECONDS = 5.0
# The check's verdict per kernel image: a kernel that took no sysrq at its first boot is
# not asked again at each restart (each ask costs SYSRQ_CHECK_SECONDS and a stray "h").
_SYSRQ_VERDICTS: dict[str, bool] = {}
SYSRQ_PROBE_KEY = b"h"   # no action bound: the kernel prints its help line, nothing else


class Liveness:
    """When to ask a silent kernel whether it is alive, and when to give up on it."""

    def __init__(self, quiet: float = QUIET_BEFORE_PROBE_SECONDS, answer: float = ANSWER_SECONDS,
                 probes: int = PROBES, most_quiet: float = MOST_QUIET_BEFORE_PROBE_SECONDS):
        self.quiet, self.answer, self.probes, self.most_quiet = quiet, answer, probes, most_quiet
        self.asked_at: list[float] = []   # the asks since the console last printed

    def next_step(self, now: float, last_output_at: float) -> str | None:
        """"probe" (ask now), "hung" (asked PROBES times, no answer), or None (wait)."""
        if self.asked_at and last_output_at >= self.asked_at[0]:
            # The console printed since: the kernel is alive. A case that is silent for
            # long is asked less and less often (its console.log gains a line per ask).
            self.asked_at.clear()
            self.quiet = min(self.quiet * 2, self.most_quiet)
        if not self.asked_at:
            return "probe" if now - last_output_at >= self.quiet else None
        if now - self.asked_at[-1] < self.answer:
            return None
        return "probe" if len(self.asked_at) < self.probes else "hung"


class UnixLineEnds:
    r"""The serial console's line ends (\r\n, and \r\r\n where the guest's tty and a
    program each add a \r) as \n, for console.log: an editor, grep's `$` and a diff read it
    as the text file it is. A \r not before a line end (a progress line) stays; a chunk
    that ends in \r holds it back until the next one shows what it was."""

    def __init__(self) -> None:
        self._held = b""

    def __call__(self, data: bytes) -> bytes:
        data = self._held + data
        kept = data.rstrip(b"\r")
        self._held = data[len(kept):]
        return _CR_LF.sub(b"\n", kept)


_CR_LF = re.compile(rb"\r+\n")


class ConsoleSession:
    """The Transport over the serial console."""
    # The console cannot copy a case's log dir back: what it carries is the excerpt
    # run-case prints.
    keeps_case_logs = False
    connects = 0
    refused_commands = 0

    def __init__(self, argv: list[str], console_log: BinaryIO,
                 observer: Callable[[str], None] | None = None, tail_lines: int = 80):
        self.argv = argv
        self.console_log = console_log
        self._log_lines = UnixLineEnds()
        self.observer = observer
        # The boot's nonce (kto.boot= on the kernel command line: READY carries it).
        self.nonce = secrets.token_hex(16)
        # The console's fence of the command running (see FENCE_SECONDS), and whether it
        # has shown; fences_work goes False after the first that never showed.
        self._fence: re.Pattern[str] | None = None
        self._fence_seen = False
        self.fences_work = True
        self.fence_seconds = FENCE_SECONDS
        self.ready_nonce: str | None = None
        self.seq = 0
        self._buf = b""
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self.kernel_release = ""
        self.guest_boot_seconds: float | None = None
        self.boot_taint = 0
        self.child: pexpect.spawn | None = None
        # QEMU's monitor (the sysrq's break, the vCPUs' registers), and whether this boot's
        # kernel answered a sysrq over the console (checked once it is at its shell).
        self.monitor: Monitor | None = None
        self.sysrq_answers = False
        self._last_output_at = time.monotonic()

    # -- process ---------------------------------------------------------
    def start(self) -> None:
        argv = list(self.argv)
        if "-append" in argv:
            i = argv.index("-append") + 1
            argv[i] = f"{argv[i]} {BOOT_NONCE_ARG}={self.nonce}"
            self.ready_nonce = self.nonce
        self.monitor = Monitor()
        argv += self.monitor.argv()
        self.sysrq_answers = False
        self.child = pexpect.spawn(argv[0], argv[1:], timeout=None, echo=False, maxread=65536)
        self._last_output_at = time.monotonic()

    @property
    def alive(self) -> bool:
        return self.child is not None and self.child.isalive()

    def kill(self) -> None:
        """End QEMU now. Safe to call twice."""
        if self.child is None:
            return
        try:
            self._drain()
        except Exception:
            pass
        finally:   # a signal during the drain still ends QEMU
            try:
                self.child.terminate(force=True)
            except Exception:
                pass
            try:
                self.child.close(force=True)
            except Exception:
                pass
            self.child = None
            if self.monitor is not None:
                self.monitor.close()
                self.monitor = None

    def halt(self, command: str | None, timeout: float = 15.0) -> None:
        """Ask the guest to end QEMU (reboot -f with -no-reboot); kill it if it does not."""
        if self.child is not None and command and self.alive:
            try:
                self.child.send((command + "\n").encode())
                self._pump(time.monotonic() + timeout, lambda line: False)
            except (GuestDied, GuestTimeout):
                pass
        self.kill()

    # -- reading ---------------------------------------------------------
    def _emit(self, raw: bytes) -> str:
        line = raw.decode("utf-8", errors="replace").rstrip("\r")
        if self._fence is not None and self._fence.search(line):
            self._fence_seen = True
        self._tail.append(line)
        if self.observer:
            self.observer(line)
        return line

    def _read_chunk(self, timeout: float) -> bytes:
        assert self.child is not None
        try:
            data = self.child.read_nonblocking(65536, timeout=max(0.0, timeout))
        except pexpect.TIMEOUT:
            return b""
        except pexpect.EOF:
            raise GuestDied("QEMU exited")
        if data:
            self._last_output_at = time.monotonic()
            self.console_log.write(self._log_lines(data))
            self.console_log.flush()
        return data

    def _drain(self) -> None:
        """Collect what QEMU printed last (a panic message) before it is gone."""
        if self.child is None:
            return
        for _ in range(50):
            try:
                data = self._read_chunk(0.05)
            except GuestDied:
                break
            if not data:
                break
            self._buf += data
        if self._buf:
            self._emit(self._buf)
            self._buf = b""

    def _pump(self, deadline: float, until: Callable[[str], bool],
              deadline_hook: Callable[[float], float] | None = None) -> str:
        """Read lines until one satisfies `until`; GuestTimeout at the deadline."""
        while True:
            while b"\n" in self._buf:
                raw, self._buf = self._buf.split(b"\n", 1)
                line = self._emit(raw)
                if until(line):
                    return line
            if deadline_hook:
                deadline = deadline_hook(deadline)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise GuestTimeout()
            self._read_into_buf(min(remaining, 1.0))

    def _read_into_buf(self, wait: float) -> None:
        """Append what QEMU prints within `wait` seconds; when it has exited, its last
        unterminated line still reaches the observer before GuestDied."""
        try:
            data = self._read_chunk(wait)
        except GuestDied:
            if self._buf:
                self._emit(self._buf)
                self._buf = b""
            raise
        self._buf += data

    def poll(self, wait: float) -> None:
        """Take what the console printed within `wait` seconds (for the observer and
        console.log) while a command runs elsewhere; GuestDied when QEMU has exited."""
        self._read_into_buf(wait)
        while b"\n" in self._buf:
            raw, self._buf = self._buf.split(b"\n", 1)
            self._emit(raw)

    def tail(self, n: int = 40) -> list[str]:
        return list(self._tail)[-n:]

    # -- protocol --------------------------------------------------------
    def wait_ready(self, timeout: float) -> None:
        ready = _ready(self.ready_nonce)
        line = self._pump(time.monotonic() + timeout, lambda l: ready.search(l) is not None)
        m = ready.search(line)
        assert m
        self.kernel_release, self.boot_taint = m.group(1), int(m.group(2))
        # The guest's uptime at its shell: its own boot time (None from older images).
        self.guest_boot_seconds = float(m.group(3)) if m.group(3) else None
        self.sysrq_answers = self._check_sysrq()

    def _ask_sysrq(self) -> bool:
        """A break on the serial line, then the sysrq key; False when QEMU's monitor did
        not take the break (the key is then not sent: the shell would read it)."""
        assert self.child is not None
        if self.monitor is None:
            return False
        try:
            self.monitor.send_break()
        except QmpError:
            return False
        self.child.send(SYSRQ_PROBE_KEY)
        return True

    def _check_sysrq(self) -> bool:
        """Whether this kernel answers a sysrq over its console, asked once at its shell."""
        kernel = self.argv[self.argv.index("-kernel") + 1] if "-kernel" in self.argv else ""
        if _SYSRQ_VERDICTS.get(kernel) is False or not self._ask_sysrq():
            return False
        try:
            self._pump(time.monotonic() + SYSRQ_CHECK_SECONDS, lambda l: SYSRQ_ANSWER.search(l) is not None)
            answers = True
        except GuestTimeout:
            # The key reached the shell, not the kernel's sysrq: a line end makes it a
            # command of its own ("h: not found"), not the start of the next one.
            self.child.send(b"\n")
            answers = False
        _SYSRQ_VERDICTS[kernel] = answers
        return answers

    def _check_alive(self, liveness: Liveness) -> None:
        """Ask a silent kernel (Liveness); GuestHung when it has stopped answering."""
        now = time.monotonic()
        step = liveness.next_step(now, self._last_output_at)
        if step == "probe":
            if self._ask_sysrq():
                liveness.asked_at.append(now)
            else:
                self.sysrq_answers = False   # the monitor is gone: wait for the timeout
        elif step == "hung":
            try:
                registers = self.monitor.registers() if self.monitor else ""
            except QmpError as exc:
                registers = f"({exc})"
            raise GuestHung(round(now - self._last_output_at, 1), len(liveness.asked_at), registers)

    def new_token(self) -> str:
        """A command's secret: 128 bits, made for that command alone, so no case can forge
        the end of its own (or a later) command: it is not on the kernel command line, in
        the boot log, or in any earlier command."""
        return secrets.token_hex(16)

    def framed(self, command: str, label: str = "") -> tuple[str, re.Pattern[str], re.Pattern[str]]:
        """The next command line with its BEGIN/END markers, and the two patterns; the
        console's fence (self._fence) is armed for it. label (a case's id) ends each marker
        line, so grepping console.log for a case finds where it began and ended."""
        self.seq += 1
        seq, token = self.seq, self.new_token()
        begin = re.compile(rf"KTO:BEGIN:{token}:{seq}(?::([\d.]+))?\b")
        end = re.compile(rf"KTO:END:{token}:{seq}:(\d+):(\d+)(?::([\d.]+))?")
        self._fence = re.compile(rf"KTO:FENCE:{token}:{seq}\b")
        self._fence_seen = False
        # printf's format hides the marker words, so an echo of this line never matches.
        # The guest's uptime at both ends (read by the shell, no fork) gives the time the
        # guest itself spent, apart from the console round trips.
        # The label comes from the tree under test (a series names its cases): quoted.
        tail, arg = (" %s", f" {shlex.quote(label)}") if label else ("", "")
        line = (f"read -r kto_t0 kto_x </proc/uptime; printf 'KTO:%s:{token}:{seq}:%s{tail}\\n' BEGIN "
                f"\"$kto_t0\"{arg}; {command}; kto_rc=$?; "
                f"echo '<0>KTO:FENCE:{token}:{seq}'{arg} >/dev/kmsg 2>/dev/null; "
                f"read -r kto_t1 kto_x </proc/uptime; "
                f"printf 'KTO:%s:{token}:{seq}:%d:%s:%s{tail}\\n' END $kto_rc "
                f"\"$(cat /proc/sys/kernel/tainted)\" \"$kto_t1\"{arg}")
        return line, begin, end

    def await_fence(self) -> None:
        """Read the console up to the running command's fence: every kernel message the
        command caused is then through the observer. GuestDied is left to the next command."""
        end = time.monotonic() + self.fence_seconds
        try:
            while not self._fence_seen and self.fences_work:
                left = end - time.monotonic()
                if left <= 0:
                    self.fences_work = False
                    break
                self.poll(min(left, 0.5))
        except GuestDied:
            pass
        self._fence = None

    def run(self, command: str, timeout: float,
            deadline_hook: Callable[[float], float] | None = None, label: str = "") -> CommandResult:
        """Run one shell command line in the guest; raises GuestTimeout / GuestDied.
        label: what the command is (a case's id), on its markers in console.log."""
        assert self.child is not None
        line, begin, end = self.framed(command, label)
        line += "\n"
        t0 = time.monotonic()
        deadline = t0 + timeout
        liveness = Liveness() if self.sysrq_answers else None

        def hook(deadline: float) -> float:
            if liveness is not None and self.sysrq_answers:
                self._check_alive(liveness)
            return deadline_hook(deadline) if deadline_hook else deadline

        self.child.send(line.encode())
        lines = _CommandLines(self._fence)
        started = None

        def begins(l: str) -> bool:
            nonlocal started
            whole = lines.feed(l)
            started = begin.search(whole) if whole is not None else None
            return started is not None
        self._pump(deadline, begins, hook)
        guest_t0 = float(started.group(1)) if started and started.group(1) else None
        output: list[str] = []
        end_line = ""

        def collect(l: str) -> bool:
            nonlocal end_line
            if end.search(l):
                whole = lines.pending() + l
            else:
                whole = lines.feed(l)   # kernel messages went to the observer already
                if whole is None:
                    return False
                if not end.search(whole):
                    output.append(whole)
                    return False
            m = end.search(whole)
            assert m
            if whole[:m.start()].strip():
                output.append(whole[:m.start()])
            end_line = whole
            return True

        try:
            self._pump(deadline, collect, hook)
        except GuestTimeout as exc:
            exc.partial = output
            raise
        self.await_fence()
        return command_result(output, end_line, end, guest_t0, time.monotonic() - t0)

    def fetch_dir(self, remote: str, local: pathlib.Path, timeout: float = 120.0) -> list[pathlib.Path]:
        raise OSError("the serial console cannot copy files back (keeps_case_logs is False)")


def command_result(output: list[str], end_line: str, end: re.Pattern[str],
                   guest_t0: float | None, seconds: float) -> CommandResult:
    """The result of a command from its END marker line (the pattern framed() made)."""
    m = end.search(end_line)
    assert m
    guest = float(m.group(3)) - guest_t0 if m.group(3) and guest_t0 is not None else None
    return CommandResult(output, int(m.group(1)), int(m.group(2)), seconds, guest)


class _CommandLines:
    """A command's lines made whole again: a kernel message printed while the UART still
    sends a line cuts it, and the line goes on after the message ("not " + printk + "ok 1
    x" reads "not ok 1 x"; "KTO:BEGIN:53932a[    1.545489] KTO:FENCE:..." then
    "bc86...:1:1.52": on loongarch64 under QEMU 7.2, one vCPU, the command's own fence
    overtook its BEGIN line)."""

    def __init__(self, fence: re.Pattern[str] | None) -> None:
        self._cut: list[str] = []
        self._fence = fence

    def feed(self, line: str) -> str | None:
        """The command's line this console line completes; None for a kernel line or the
        start of a line that goes on after a kernel message."""
        part = command_part(line)
        f = self._fence.search(part) if self._fence is not None and part is not None else None
        if f:
            # The fence without a timestamp (printk time turned off in the guest): it cuts
            # the command's line like any kernel message.
            self._cut.append(part[:f.start()])
            return None
        if part is None:
            return None
        if part != line:
            self._cut.append(part)
            return None
        whole = "".join(self._cut) + line
        self._cut.clear()
        return whole

    def pending(self) -> str:
        """The start of a line a kernel message cut, not gone on yet."""
        return "".join(self._cut)
