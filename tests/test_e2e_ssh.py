"""The SSH transport on a real x86_64 guest: the same statuses as the serial console,
full case logs copied back with scp, the console still captured, a dropped connection
costing one case, a refused one retried and then reported with the console tail."""
import json
import pathlib
import time

import pytest

from conftest import DEFAULT_BANNER, run_orchestrator_test
from orchestrator.vm.scp import ScpSink
from orchestrator.vm.ssh import SshSession, net_args
from orchestrator.vm.transport import TransportLost

REPO = pathlib.Path(__file__).resolve().parent.parent
STATUS_TC = REPO / "tests" / "faults" / "tc_status"
SSH_TC = REPO / "tests" / "faults" / "tc_ssh"


def test_the_port_forward_listens_on_loopback_only():
    argv = net_args("virtio-net-pci", 40022)
    assert argv[1] == "user,id=kto0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22"
    assert argv[3] == "virtio-net-pci,netdev=kto0"


class _ScriptedChannel:
    """What a guest's scp source could send: a fault dropbear's scp never makes (it
    sends base names), so it is scripted here."""

    def __init__(self, data: bytes, seconds_per_recv: float = 0.0):
        self.data = data
        self.sent = b""
        self.seconds_per_recv = seconds_per_recv
        self.timeout = None

    def settimeout(self, seconds: float) -> None:
        self.timeout = seconds

    def recv(self, n: int) -> bytes:
        time.sleep(self.seconds_per_recv)   # a guest that sends a byte now and then
        out, self.data = self.data[:n], self.data[n:]
        return out

    def sendall(self, b: bytes) -> None:
        self.sent += b


@pytest.mark.parametrize("name", ["../escape", "a/b", ".."])
def test_scp_refuses_names_that_leave_the_target(tmp_path, name):
    chan = _ScriptedChannel(b"D0755 0 logs\n" + f"C0644 3 {name}\n".encode() + b"abc\0E\n")
    with pytest.raises(OSError, match="refusing the name"):
        ScpSink(chan).receive_into(tmp_path / "dest")
    assert not (tmp_path / "escape").exists()


@pytest.mark.parametrize("stream,said", [
    (b"D0755 0 logs\nC0644 nonsense\n", "garbled record"),        # too few fields
    (b"D0755 0 logs\nC06z4 3 x\nabc\0E\n", "garbled record"),       # a mode that is not octal
    (b"D0755 0 logs\nC0644 99999999999 big\n", "more than 64 MiB"),  # a size the host would buffer
    (b"E\n", "never began"),                                       # an end with no directory
    (b"D0755 0 " + b"x" * 5000 + b"\n", "longer than 1024 bytes"),  # a line without end
    (b"D0755 0 logs\n" + b"C0644 0 e\n\0" * 10001, "more than 10000 entries"),  # empty files
    (b"D0755 0 d\n" * 40, "levels of directories"),
])
def test_scp_refuses_a_garbled_or_unbounded_stream(tmp_path, stream, said):
    with pytest.raises(OSError, match=said):
        ScpSink(_ScriptedChannel(stream)).receive_into(tmp_path / "dest")


def test_scp_stops_at_its_deadline_whatever_the_guest_trickles(tmp_path):
    chan = _ScriptedChannel(b"D0755 0 logs\nC0644 1000 slow\n" + b"x" * 1000, seconds_per_recv=0.05)
    t0 = time.monotonic()
    with pytest.raises(OSError, match="took longer than 1s"):
        ScpSink(chan, seconds=1.0).receive_into(tmp_path / "dest")
    assert time.monotonic() - t0 < 2.0 and 0 < chan.timeout <= 1.0


def test_scp_sink_reads_a_tree(tmp_path):
    chan = _ScriptedChannel(b"D0755 0 logs\nC0644 5 ktap.out\nhello\0D0700 0 sub\nC0600 2 x\nhi\0E\nE\n")
    files = ScpSink(chan).receive_into(tmp_path / "dest")
    assert (tmp_path / "dest" / "ktap.out").read_bytes() == b"hello"
    assert (tmp_path / "dest" / "sub" / "x").read_bytes() == b"hi"
    assert len(files) == 2 and chan.sent == b"\0" * 9


# -- real guests --------------------------------------------------------------------

def _run(results: pathlib.Path, *args: str) -> tuple[dict, pathlib.Path, str]:
    # One guest: its connections and restarts are what these tests count.
    p, _ = run_orchestrator_test(results, "--guests", "1", *args)
    latest = (results / "latest").resolve()
    print(p.stdout[-3000:], p.stderr[-2000:])
    return json.loads((latest / "results.json").read_text()), latest, p.stdout


@pytest.fixture(scope="module")
def serial_and_ssh(tmp_path_factory):
    serial = _run(tmp_path_factory.mktemp("serial"), "--suite", "tcscripts", "--tcdir", str(STATUS_TC))
    ssh = _run(tmp_path_factory.mktemp("ssh"), "--suite", "tcscripts", "--tcdir", str(STATUS_TC),
               "--transport", "ssh")
    return serial, ssh


@pytest.mark.e2e
def test_ssh_gives_the_statuses_of_the_serial_console(serial_and_ssh):
    (serial, _, _), (ssh, ssh_dir, out) = serial_and_ssh
    assert serial["transport"] == {"name": "serial"}
    assert ssh["transport"]["name"] == "ssh"
    # One connection per boot: the case that ends the guest costs a restart.
    assert ssh["transport"]["connects"] == max(c["boot"] for c in ssh["cases"]) == 2
    assert [(c["id"], c["status"]) for c in ssh["cases"]] == [(c["id"], c["status"]) for c in serial["cases"]]
    assert ssh["state"] == "complete" and ssh["exit_code"] == 1
    # The serial console is still captured: boot messages, and the second boot's too.
    console = (ssh_dir / "console.log").read_bytes()
    assert console.count(DEFAULT_BANNER.encode()) == 2 and b"reboot: Restarting system" in console


@pytest.mark.e2e
def test_ssh_copies_a_failing_case_logs_back_whole(serial_and_ssh):
    (serial, _, _), (ssh, ssh_dir, _) = serial_and_ssh
    failed = next(c for c in ssh["cases"] if c["id"] == "tcscripts/02_fail.tc")
    logs = ssh_dir / failed["guest_logs"]
    assert {p.name for p in logs.iterdir()} >= {"ftracetest.log", "ktap.out"}
    (case_log,) = logs.glob("1-02_fail.tc-log.*")
    assert "status run: this case fails on purpose" in case_log.read_text()
    assert "not ok 1 status run: a case that fails" in (logs / "ktap.out").read_text()
    assert all(c["guest_logs"] is None for c in ssh["cases"] if c["status"] == "PASS")
    # The serial console has nothing to copy from.
    assert all(c["guest_logs"] is None for c in serial["cases"])


@pytest.mark.e2e
def test_a_dropped_connection_costs_one_case(tmp_path):
    data, _, _ = _run(tmp_path, "--suite", "tcscripts", "--tcdir", str(SSH_TC), "--transport", "ssh")
    first, second = data["cases"]
    assert first["status"] == "ERROR"
    assert "the SSH connection dropped during the command" in first["reason"]
    assert "KTO:BEGIN" in first["log"]   # the console tail comes with it
    assert second["status"] == "PASS" and second["boot"] == 2
    assert data["transport"]["connects"] == 2


@pytest.mark.e2e
def test_a_refused_connection_is_retried_then_reported(serial_and_ssh, tmp_path):
    """The forward points at a guest port nothing listens on: each try is refused (the
    guest resets it), the tries stop at the budget, and the error says so."""
    _, (ssh, ssh_dir, _) = serial_and_ssh
    with open(tmp_path / "console.log", "wb") as log:
        session = SshSession(ssh["qemu_argv"], log, "virtio-net-pci", guest_port=2222, connect_budget=12)
        try:
            session.start()
            with pytest.raises(TransportLost, match=r"no SSH connection to 127\.0\.0\.1:\d+ \(guest port 2222\) "
                                                    r"after ([3-9]|\d\d) tries"):
                session.wait_ready(120)
            assert any("KTO:READY" in line for line in session.tail(80))
        finally:
            session.kill()


@pytest.mark.e2e
def test_a_command_the_guest_cannot_start_is_asked_again(serial_and_ssh, tmp_path):
    """dropbear answers an exec request with a failure when its fork fails: nothing
    started, so it is asked again. The fork is made to fail for two seconds for real
    (threads-max under the task count, set back by a channel that runs only builtins).
    A request that ends the connection is not asked again."""
    _, (ssh, _, _) = serial_and_ssh
    with open(tmp_path / "console.log", "wb") as log:
        session = SshSession(ssh["qemu_argv"], log, "virtio-net-pci")
        try:
            session.start()
            session.wait_ready(120)
            assert session.run("mkfifo /tmp/hold", 30).exit_status == 0
            holder = session._exec(
                "exec 3<>/tmp/hold; was=$(cat /proc/sys/kernel/threads-max); "
                "echo 20 > /proc/sys/kernel/threads-max; echo low; read -t 2 x <&3; "
                "echo $was > /proc/sys/kernel/threads-max", combine_stderr=True)
            assert holder.recv(16) == b"low\n"
            result = session.run("echo ran", 60)
            assert result.output == ["ran"] and session.refused_commands >= 1
            holder.close()

            # Over dropbear's 9000-byte limit the request ends the connection, not the
            # channel: the command may not be asked again, the next one reconnects.
            refused = session.refused_commands
            with pytest.raises(TransportLost, match=r"dropped while the command was asked for"):
                session.run("true " + "x" * 9000, 60)
            assert session.refused_commands == refused
            assert session.run("echo again", 30).output == ["again"] and session.connects == 2
        finally:
            session.kill()
