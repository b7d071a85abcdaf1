"""The SSH transport: commands run over SSH (paramiko), the serial console still read.

QEMU's user networking forwards a free port on 127.0.0.1 (never another address) to
the guest's port 22; `restrict=on` keeps the guest from reaching anything else. The
keys are made per boot: the host's client key here, the guest's host key by the guest
itself, whose public half comes back over the serial console (a channel nobody else
can speak on) and is the only key the client accepts.

The console keeps flowing into console.log and the splat detector while a command runs
over SSH, so a splat is still attributed to its case and a dead QEMU is still noticed.
"""
from __future__ import annotations

import logging
import pathlib
import select
import shlex
import socket
import threading
import time
from typing import BinaryIO, Callable

import paramiko

from .console import ConsoleSession, Liveness, command_result
from .scp import ScpSink
from .transport import CommandResult, GuestHung, GuestTimeout, TransportLost
from ..guest.dropbear import GUEST_PATH

GUEST_SSH_PORT = 22
HOST_KEY_FILE = "/etc/dropbear/host_ed25519"
# The waits between connection attempts (the last repeats) and the time all attempts
# may take: enough for a TCG guest whose server is still starting, bounded for one
# whose server never will.
BACKOFF_SECONDS = (0.5, 1.0, 2.0, 4.0, 8.0)
CONNECT_BUDGET = 90.0
# Under TCG the key exchange alone takes seconds: generous, but within the budget.
HANDSHAKE_TIMEOUT = 30.0
# The waits before asking again for a command the guest's server refused to start.
EXEC_REFUSED_WAITS = (0.5, 2.0, 5.0)

# paramiko's transport thread logs each failed attempt with a traceback; the attempts
# are retried and the last error is reported, so the noise is dropped.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False


def free_local_port() -> int:
    """A port free on 127.0.0.1 now. QEMU binds it a moment later; if something else
    takes it in between, QEMU exits at start and the boot fails with its message."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def net_args(net_device: str, host_port: int, guest_port: int = GUEST_SSH_PORT) -> list[str]:
    return ["-netdev", f"user,id=kto0,restrict=on,hostfwd=tcp:127.0.0.1:{host_port}-:{guest_port}",
            "-device", f"{net_device},netdev=kto0"]


def server_setup_command(client_public_key: str, guest_port: int = GUEST_SSH_PORT) -> str:
    """What the guest runs (over the console) to start its server: its network, root's
    authorized key, a fresh host key (its public line printed), then dropbear."""
    db = GUEST_PATH
    return " && ".join([
        "ip link set lo up", "ip link set eth0 up", "ip addr add 10.0.2.15/24 dev eth0",
        "mkdir -p /root/.ssh /etc/dropbear", "chmod 700 /root /root/.ssh",
        f"echo {shlex.quote(client_public_key)} > /root/.ssh/authorized_keys",
        "chmod 600 /root/.ssh/authorized_keys",
        f"{db} dropbearkey -t ed25519 -f {HOST_KEY_FILE} >/dev/null 2>&1",
        f"{db} dropbearkey -y -f {HOST_KEY_FILE} | grep '^ssh-ed25519 '",
        # Passwords and forwarding are compiled out (guest/dropbear.py LOCAL_OPTIONS); -E: its log to a
        # file in the guest, not to a syslog there is none of.
        f"{db} dropbear -r {HOST_KEY_FILE} -p {guest_port} -m -E -P /tmp/dropbear.pid 2>>/tmp/dropbear.log",
    ])


class SshSession(ConsoleSession):
    """The Transport over SSH; the console is still read (for console.log and splats)."""
    keeps_case_logs = True

    def __init__(self, argv: list[str], console_log: BinaryIO, net_device: str,
                 observer: Callable[[str], None] | None = None, tail_lines: int = 80,
                 guest_port: int = GUEST_SSH_PORT, connect_budget: float = CONNECT_BUDGET):
        super().__init__(argv, console_log, observer, tail_lines)
        self.base_argv = list(argv)
        self.net_device = net_device
        # The port the host forward points at in the guest: 22, where dropbear listens.
        self.guest_port = guest_port
        self.connect_budget = connect_budget
        self.host_port: int | None = None
        self.client_key = paramiko.ECDSAKey.generate(bits=256)
        self.host_key_line = ""          # "ssh-ed25519 AAAA..." as the guest printed it
        self.transport: paramiko.Transport | None = None
        self.connects = 0                # connections made (1 + reconnects)
        self.refused_commands = 0        # exec requests the server refused, asked again

    # -- process ---------------------------------------------------------
    def start(self) -> None:
        self.host_port = free_local_port()
        self.argv = [*self.base_argv, *net_args(self.net_device, self.host_port, self.guest_port)]
        super().start()

    def kill(self) -> None:
        self._close_transport()
        super().kill()

    def halt(self, command: str | None, timeout: float = 15.0) -> None:
        self._close_transport()
        super().halt(command, timeout)

    def _close_transport(self) -> None:
        if self.transport is not None:
            try:
                self.transport.close()
            except Exception:
                pass
            self.transport = None

    # -- connection ------------------------------------------------------
    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        super().wait_ready(timeout)
        setup = super().run(server_setup_command(
            f"{self.client_key.get_name()} {self.client_key.get_base64()}", GUEST_SSH_PORT),
            max(deadline - time.monotonic(), 30.0))
        keys = [l.split()[:2] for l in setup.output if l.startswith("ssh-ed25519 ")]
        if setup.exit_status != 0 or not keys:
            raise TransportLost(
                f"the guest could not start its SSH server (exit {setup.exit_status}): "
                + " | ".join(setup.output[-5:]))
        self.host_key_line = " ".join(keys[-1])
        self.connect()

    def _wait_watching_console(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.poll(min(left, 0.5))

    def connect(self) -> None:
        """Connect and log in, retrying with backoff; TransportLost when every try failed."""
        self._close_transport()
        assert self.host_port is not None
        errors: list[str] = []
        t0 = time.monotonic()
        end = t0 + self.connect_budget
        while True:
            attempt = len(errors)
            try:
                self.transport = self._handshake(max(1.0, min(HANDSHAKE_TIMEOUT, end - time.monotonic())))
                self.connects += 1
                return
            except (OSError, EOFError, paramiko.SSHException) as exc:
                errors.append(f"try {attempt + 1}: {type(exc).__name__}: {exc}".strip())
                self._close_transport()
            wait = BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)]
            if time.monotonic() + wait >= end:
                break
            self._wait_watching_console(wait)   # GuestDied ends the tries at once
        raise TransportLost(
            f"no SSH connection to 127.0.0.1:{self.host_port} (guest port {self.guest_port}) after "
            f"{len(errors)} tries in {time.monotonic() - t0:.0f}s; last: {errors[-1]}")

    def _handshake(self, timeout: float) -> paramiko.Transport:
        sock = socket.create_connection(("127.0.0.1", self.host_port), timeout=timeout)
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = timeout
            transport.handshake_timeout = timeout
            transport.auth_timeout = timeout
            transport.start_client(timeout=timeout)
            key = transport.get_remote_server_key()
            if f"{key.get_name()} {key.get_base64()}" != self.host_key_line:
                raise paramiko.SSHException(
                    f"host key {key.get_name()} {key.get_fingerprint().hex()} is not the one the "
                    "guest printed on its console")
            transport.auth_publickey("root", self.client_key)
            transport.set_keepalive(10)
            return transport
        except BaseException:
            transport.close()
            raise

    def _channel(self) -> paramiko.Channel:
        """A new session channel; one reconnect (with its backoff) when the link is gone."""
        for again in (False, True):
            if self.transport is None or not self.transport.is_active():
                self.connect()
            assert self.transport is not None
            try:
                return self.transport.open_session(timeout=HANDSHAKE_TIMEOUT)
            except (OSError, EOFError, paramiko.SSHException) as exc:
                self._close_transport()
                if again:
                    raise TransportLost(f"the SSH connection refuses new sessions ({exc})") from exc
        raise AssertionError("unreachable")

    def _exec(self, command: str, combine_stderr: bool) -> paramiko.Channel:
        """A new channel running `command` (its stderr in its output if combine_stderr).

        An exec request the server answers with a failure (dropbear does when its fork
        or pipe fails in a guest short of memory for a moment) started nothing, so it is
        asked again on a new channel after a wait; paramiko reports that answer as
        "Channel closed." with the connection still up. exec_command itself waits for
        the answer without a timeout, and a hung guest keeps the TCP connection open:
        closing the transport after HANDSHAKE_TIMEOUT ends that wait, and then the
        command may have started, so it is never asked again."""
        refusals: list[str] = []
        while True:
            chan = self._channel()
            chan.set_combine_stderr(combine_stderr)
            timed_out = threading.Event()

            def give_up() -> None:
                timed_out.set()
                self._close_transport()
            watchdog = threading.Timer(HANDSHAKE_TIMEOUT, give_up)
            watchdog.start()
            t0 = time.monotonic()
            try:
                chan.exec_command(command)
                return chan
            except (OSError, EOFError, paramiko.SSHException) as exc:
                chan.close()
                waited = time.monotonic() - t0
                refused = (not timed_out.is_set() and self.transport is not None
                           and self.transport.is_active())
                if not refused:
                    why = exc or type(exc).__name__
                    raise TransportLost(
                        f"the SSH connection gave no answer to the command within {waited:.0f}s"
                        if timed_out.is_set() else
                        f"the SSH connection dropped while the command was asked for ({why})") from exc
                refusals.append(f"{waited:.1f}s")
                self.refused_commands += 1
                if len(refusals) > len(EXEC_REFUSED_WAITS):
                    raise TransportLost(
                        f"the guest's SSH server refused the command {len(refusals)} times "
                        f"(answered after {', '.join(refusals)}): it could not start a process "
                        "for it") from exc
                self._wait_watching_console(EXEC_REFUSED_WAITS[len(refusals) - 1])
            finally:
                watchdog.cancel()

    # -- commands --------------------------------------------------------
    def run(self, command: str, timeout: float,
            deadline_hook: Callable[[float], float] | None = None, label: str = "") -> CommandResult:
        """As ConsoleSession.run, over SSH: GuestTimeout / GuestDied / TransportLost. The
        label ends the fence line the kernel prints on the console."""
        assert self.child is not None
        t0 = time.monotonic()
        deadline = t0 + timeout
        line, begin, end = self.framed(command, label)
        # The framed line is the exec request itself: the guest shell's cmdline holds it
        # (and so its end marker). Sending it over the channel's stdin instead hid it, but
        # made the server refuse some channels ("Channel is not open") under load here.
        chan = self._exec(line, combine_stderr=True)
        output: list[str] = []
        buf = b""
        guest_t0: float | None = None
        began = False
        liveness = Liveness() if self.sysrq_answers else None
        try:
            while True:
                if liveness is not None and self.sysrq_answers:
                    try:
                        self._check_alive(liveness)   # asked over the console, as there
                    except GuestHung as exc:
                        exc.partial = output
                        raise
                if deadline_hook:
                    deadline = deadline_hook(deadline)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise GuestTimeout(output)
                select.select([chan, self.child.child_fd], [], [], min(remaining, 1.0))
                self.poll(0)   # the console: console.log, splats; GuestDied if QEMU is gone
                while chan.recv_ready():
                    buf += chan.recv(65536)
                    self._last_output_at = time.monotonic()   # the case's output: alive
                while b"\n" in buf:
                    raw, buf = buf.split(b"\n", 1)
                    text = raw.decode("utf-8", errors="replace").rstrip("\r")
                    if not began:
                        m = begin.search(text)
                        if m:
                            began = True
                            guest_t0 = float(m.group(1)) if m.group(1) else None
                        continue
                    m = end.search(text)
                    if m:
                        if text[:m.start()].strip():
                            output.append(text[:m.start()])
                        self.await_fence()
                        return command_result(output, text, end, guest_t0, time.monotonic() - t0)
                    output.append(text)
                if (chan.closed or chan.eof_received) and not chan.recv_ready():
                    if buf:
                        output.append(buf.decode("utf-8", errors="replace"))
                    # A guest that powered off or panicked drops the connection a moment
                    # before QEMU's exit shows on the console: that is GuestDied, not a
                    # transport fault.
                    self._wait_watching_console(3.0)
                    raise TransportLost("the SSH connection dropped during the command"
                                        if not self.transport or not self.transport.is_active()
                                        else "the guest's shell for the command ended without its end marker",
                                        output)
        finally:
            chan.close()

    def fetch_dir(self, remote: str, local: pathlib.Path, timeout: float = 120.0) -> list[pathlib.Path]:
        """Copy a guest directory back with scp (the source side runs in the guest)."""
        # stdout is scp's protocol stream: a message on stderr must not enter it.
        chan = self._exec(f"{GUEST_PATH} scp -r -f {shlex.quote(remote)}", combine_stderr=False)
        try:
            return ScpSink(chan, timeout).receive_into(local)
        except (EOFError, paramiko.SSHException) as exc:
            raise TransportLost(f"scp of {remote} failed: {exc}") from exc
        finally:
            chan.close()
