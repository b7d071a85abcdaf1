"""Run a command beside an sshd of its own, on a loopback that nothing else shares.

    unshare --net --mount -- python netns_sshd.py HOME PORT -- COMMAND...

Meant to be started under `unshare --net --mount` (the test does): in that fresh network
namespace the loopback is brought up and Debian's dropbear (dropbear-bin) listens on
127.0.0.1:PORT there only. Root's home, as the namespace's /etc/passwd says (a copy,
bind-mounted over it in the private mount namespace), is HOME: its .ssh/authorized_keys
holds a key made here, and HOME/ssh_config says how to reach the sshd with it. The host's
/etc/passwd, /root and network are left as they were. COMMAND's exit status is ours.
"""
from __future__ import annotations

import pathlib
import socket
import subprocess
import sys
import time


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"netns_sshd: dropbear exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"netns_sshd: dropbear did not listen on 127.0.0.1:{port} within {timeout:g}s")


def main(argv: list[str]) -> int:
    home, port, sep, command = pathlib.Path(argv[0]), int(argv[1]), argv[2], argv[3:]
    assert sep == "--" and command, __doc__
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    home.mkdir(parents=True, exist_ok=True)
    home.chmod(0o700)
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    passwd = home / "passwd"
    lines = []
    for line in pathlib.Path("/etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == "root":
            fields[5] = str(home)
        lines.append(":".join(fields))
    passwd.write_text("\n".join(lines) + "\n")
    subprocess.run(["mount", "--bind", str(passwd), "/etc/passwd"], check=True)
    key, host_key = home / "client_key", home / "host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    subprocess.run(["dropbearkey", "-t", "ed25519", "-f", str(host_key)], check=True, capture_output=True)
    (ssh_dir / "authorized_keys").write_text((home / "client_key.pub").read_text())
    (ssh_dir / "authorized_keys").chmod(0o600)
    (home / "ssh_config").write_text(
        f"Host 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
        "  BatchMode yes\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n")
    # -e: the logged-in command gets this process's environment (PATH, PYTHONPATH), as a
    # worker started by popen would; -s: keys only; -F -E: in the foreground, log to stderr.
    sshd = subprocess.Popen(["dropbear", "-F", "-E", "-e", "-s", "-p", f"127.0.0.1:{port}",
                             "-r", str(host_key), "-P", str(home / "dropbear.pid")])
    try:
        _wait_for_port(port, sshd)
        return subprocess.run(command).returncode
    finally:
        sshd.terminate()
        sshd.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
