"""What a session with a guest offers, whichever way commands reach it: the serial
console (console.ConsoleSession) or SSH with the console still read (ssh.SshSession).
GuestRunner and the pipeline speak only this."""
from __future__ import annotations

import dataclasses
import pathlib
from typing import Callable, Protocol


class GuestDied(Exception):
    """QEMU exited (panic with panic=-1, killed from outside, or a failed start)."""


class GuestTimeout(Exception):
    """No marker within the deadline: the guest hangs or the command runs too long."""

    def __init__(self, partial: list[str] | None = None):
        super().__init__("timeout")
        self.partial = partial or []   # what the command printed before the deadline


class GuestHung(GuestTimeout):
    """The kernel answers nothing: its console has been silent and a sysrq sent over the
    serial line got no reply (console.Liveness). registers: every vCPU's at that moment,
    as QEMU's monitor printed them (what went wrong asking, when it did not)."""

    def __init__(self, silent_seconds: float, asked: int, registers: str):
        super().__init__()
        # What a caller that takes it for any GuestTimeout prints (the leak scan's error).
        self.args = (f"the kernel stopped answering: nothing for {silent_seconds:g}s, none of {asked} "
                     "sysrq(s) answered",)
        self.silent_seconds = silent_seconds
        self.asked = asked
        self.registers = registers


class TransportLost(Exception):
    """No SSH connection could be made, or it dropped during a command."""

    def __init__(self, message: str, partial: list[str] | None = None):
        super().__init__(message)
        self.partial = partial or []


@dataclasses.dataclass
class CommandResult:
    output: list[str]        # the command's own lines (kernel messages taken out)
    exit_status: int
    taint: int
    seconds: float
    guest_seconds: float | None = None   # by the guest's own uptime (None: an older log)


class Transport(Protocol):
    # Whether a non-passing case's log dir can be copied back whole (fetch_dir).
    keeps_case_logs: bool
    # From the guest's READY line: `uname -r`, its uptime at the shell, its taint mask.
    kernel_release: str
    guest_boot_seconds: float | None
    boot_taint: int
    connects: int            # network connections made (0 on the console)
    refused_commands: int    # commands the guest's server refused to start, asked again

    @property
    def alive(self) -> bool: ...

    def start(self) -> None: ...

    def wait_ready(self, timeout: float) -> None: ...

    def run(self, command: str, timeout: float,
            deadline_hook: Callable[[float], float] | None = None, label: str = "") -> CommandResult: ...

    def poll(self, wait: float) -> None: ...

    def tail(self, n: int = 40) -> list[str]: ...

    def fetch_dir(self, remote: str, local: pathlib.Path, timeout: float = 120.0) -> list[pathlib.Path]: ...

    def halt(self, command: str | None, timeout: float = 15.0) -> None: ...

    def kill(self) -> None: ...
