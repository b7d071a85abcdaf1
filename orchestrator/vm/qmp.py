"""A guest's QEMU monitor (QMP) on a unix socket: what the console cannot ask a guest whose
kernel has stopped answering. A serial break (the first half of a sysrq over the console)
and the vCPUs' registers (where each CPU of a hung kernel is).

The socket lives in a private directory of its own under the host's temp dir (a unix
socket's path is limited to 107 bytes, a results dir is not); nothing listens on a
network port.
"""
from __future__ import annotations

import json
import pathlib
import re
import shutil
import socket
import tempfile
import time

# How long one monitor command may take: QEMU answers between its vCPUs' time slices,
# on a loaded host within a second.
COMMAND_SECONDS = 10.0

# Where each target's `info registers` names the vCPU's program counter: x86 (RIP in long
# mode, EIP before), arm64 and loongarch64 (PC=), riscv64 (a "pc" row), s390x (the PSW's
# address). The dump of each vCPU starts with "CPU#n".
_PC = re.compile(r"\b(?:RIP|EIP|PC)=([0-9a-fA-F]+)|^\s*pc\s+([0-9a-fA-F]+)\s*$|PSW=mask [0-9a-f]+ addr ([0-9a-f]+)",
                 re.M)
_CPU = re.compile(r"^CPU#(\d+)", re.M)


class QmpError(Exception):
    """The monitor did not answer, or refused the command."""


class Monitor:
    """The QMP socket of one QEMU process: its argv options and one command at a time."""

    def __init__(self) -> None:
        # A TMPDIR too long for a socket's path gives way to /tmp.
        short = len(tempfile.gettempdir()) <= 64
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="kto-qmp-", dir=None if short else "/tmp"))
        self.path = self.dir / "qmp.sock"

    def argv(self) -> list[str]:
        # server=on,wait=off: QEMU listens and boots without waiting for a client; a comma
        # in the path is doubled, as QEMU's option syntax wants.
        return ["-qmp", f"unix:{str(self.path).replace(',', ',,')},server=on,wait=off"]

    def close(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def execute(self, command: str, arguments: dict | None = None, timeout: float = COMMAND_SECONDS):
        """The command's "return" value; QmpError when QEMU does not answer in time or
        refuses. A connection per command: the few a case needs (two breaks, one dump)
        do not warrant keeping one open beside a guest that may be killed at any time."""
        deadline = time.monotonic() + timeout
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(self.path))
                with sock.makefile("rb") as reader:
                    _reply(reader, deadline)   # the greeting
                    for name, args in (("qmp_capabilities", None), (command, arguments)):
                        msg = {"execute": name} | ({"arguments": args} if args else {})
                        sock.sendall(json.dumps(msg).encode() + b"\n")
                        answer = _reply(reader, deadline)
                        if "error" in answer:
                            raise QmpError(f"QEMU refused {name}: {answer['error'].get('desc', answer['error'])}")
                    return answer.get("return")
        except (OSError, ValueError) as exc:
            raise QmpError(f"QEMU's monitor did not answer {command}: {exc}") from None

    def send_break(self, chardev: str = "serial0") -> None:
        """A break on the guest's serial line (-serial stdio is chardev serial0)."""
        self.execute("chardev-send-break", {"id": chardev})

    def registers(self) -> str:
        """Every vCPU's registers as QEMU's `info registers -a` prints them."""
        return (self.execute("human-monitor-command", {"command-line": "info registers -a"}) or "").replace("\r", "")


def _reply(reader, deadline: float) -> dict:
    """The next message that is not an asynchronous event."""
    while True:
        if time.monotonic() > deadline:
            raise OSError("timed out")
        line = reader.readline()
        if not line:
            raise OSError("the monitor closed the connection")
        msg = json.loads(line)
        if "event" not in msg:
            return msg


def program_counters(dump: str) -> list[tuple[int, int]]:
    """(cpu, pc) from an `info registers -a` dump: the first pc after each CPU#n."""
    starts = [(int(m.group(1)), m.end()) for m in _CPU.finditer(dump)] or [(0, 0)]
    out = []
    for k, (cpu, start) in enumerate(starts):
        end = starts[k + 1][1] if k + 1 < len(starts) else len(dump)
        m = _PC.search(dump, start, end)
        if m:
            out.append((cpu, int(next(g for g in m.groups() if g), 16)))
    return out
