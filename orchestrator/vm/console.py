"""Drives a guest over its serial console with pexpect.

Everything QEMU prints is appended to console.log byte for byte, and every line is
passed to an observer (the splat detector) as it arrives. Commands are framed by
markers that carry a per-boot nonce and a sequence number, so output and exit status
are unambiguous even when the kernel prints to the same console.
"""
from __future__ import annotations

import collections
import dataclasses
import re
import secrets
import time
from typing import BinaryIO, Callable

import pexpect

from ..suites.splats import kernel_text

READY = re.compile(r"KTO:READY:([^:\s]*):(\d+)(?::([\d.]+))?")


class GuestDied(Exception):
    """QEMU exited (panic with panic=-1, killed from outside, or a failed start)."""


class GuestTimeout(Exception):
    """No marker within the deadline: the guest hangs or the command runs too long."""

    def __init__(self, partial: list[str] | None = None):
        super().__init__("timeout")
        self.partial = partial or []   # what the command printed before the deadline


@dataclasses.dataclass
class CommandResult:
    output: list[str]        # the command's own lines (kernel lines taken out)
    kernel_lines: list[str]  # kernel messages printed while it ran
    exit_status: int
    taint: int
    seconds: float
    guest_seconds: float | None = None   # by the guest's own uptime (None: an older log)


class ConsoleSession:
    # Whether a non-passing case's log dir can be copied back whole (SSH can, the
    # console cannot: what it carries is the excerpt run-case prints).
    keeps_case_logs = False

    def __init__(self, argv: list[str], console_log: BinaryIO,
                 observer: Callable[[str], None] | None = None, tail_lines: int = 80):
        self.argv = argv
        self.console_log = console_log
        self.observer = observer
        self.nonce = secrets.token_hex(4)
        self.seq = 0
        self._buf = b""
        self._tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
        self.kernel_release = ""
        self.guest_boot_seconds: float | None = None
        self.boot_taint = 0
        self.child: pexpect.spawn | None = None

    # -- process ---------------------------------------------------------
    def start(self) -> None:
        self.child = pexpect.spawn(self.argv[0], self.argv[1:], timeout=None, echo=False,
                                   maxread=65536)

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
        try:
            self.child.terminate(force=True)
        except Exception:
            pass
        try:
            self.child.close(force=True)
        except Exception:
            pass
        self.child = None

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
            self.console_log.write(data)
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
        line = self._pump(time.monotonic() + timeout, lambda l: READY.search(l) is not None)
        m = READY.search(line)
        assert m
        self.kernel_release, self.boot_taint = m.group(1), int(m.group(2))
        # The guest's uptime at its shell: its own boot time (None from older images).
        self.guest_boot_seconds = float(m.group(3)) if m.group(3) else None

    def framed(self, command: str) -> tuple[str, re.Pattern[str], re.Pattern[str]]:
        """The next command line with its BEGIN/END markers, and the two patterns."""
        self.seq += 1
        seq = self.seq
        begin = re.compile(rf"KTO:BEGIN:{self.nonce}:{seq}(?::([\d.]+))?\b")
        end = re.compile(rf"KTO:END:{self.nonce}:{seq}:(\d+):(\d+)(?::([\d.]+))?")
        # printf's format hides the marker words, so an echo of this line never matches.
        # The guest's uptime at both ends (read by the shell, no fork) gives the time the
        # guest itself spent, apart from the console round trips.
        line = (f"read -r kto_t0 kto_x </proc/uptime; printf 'KTO:%s:{self.nonce}:{seq}:%s\\n' BEGIN "
                f"\"$kto_t0\"; {command}; kto_rc=$?; read -r kto_t1 kto_x </proc/uptime; "
                f"printf 'KTO:%s:{self.nonce}:{seq}:%d:%s:%s\\n' END $kto_rc "
                f"\"$(cat /proc/sys/kernel/tainted)\" \"$kto_t1\"")
        return line, begin, end

    def run(self, command: str, timeout: float,
            deadline_hook: Callable[[float], float] | None = None) -> CommandResult:
        """Run one shell command line in the guest; raises GuestTimeout / GuestDied."""
        assert self.child is not None
        line, begin, end = self.framed(command)
        line += "\n"
        t0 = time.monotonic()
        deadline = t0 + timeout
        self.child.send(line.encode())
        first = self._pump(deadline, lambda l: begin.search(l) is not None, deadline_hook)
        started = begin.search(first)
        guest_t0 = float(started.group(1)) if started and started.group(1) else None
        output: list[str] = []
        kernel: list[str] = []

        def collect(l: str) -> bool:
            m = end.search(l)
            if m:
                before = l[:m.start()]
                if before.strip():
                    output.append(before)
                return True
            (kernel if kernel_text(l) else output).append(l)
            return False

        try:
            last = self._pump(deadline, collect, deadline_hook)
        except GuestTimeout:
            raise GuestTimeout(output) from None
        return command_result(output, kernel, last, end, guest_t0, time.monotonic() - t0)


def command_result(output: list[str], kernel: list[str], end_line: str, end: re.Pattern[str],
                   guest_t0: float | None, seconds: float) -> CommandResult:
    """The result of a command from its END marker line (the pattern framed() made)."""
    m = end.search(end_line)
    assert m
    guest = float(m.group(3)) - guest_t0 if m.group(3) and guest_t0 is not None else None
    return CommandResult(output, kernel, int(m.group(1)), int(m.group(2)), seconds, guest)
