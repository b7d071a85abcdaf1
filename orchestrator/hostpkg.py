"""Debian packages and root-owned files on the host, for `deps`: as root directly, else
through sudo."""
from __future__ import annotations

import os
import pathlib
import subprocess

from . import cache
from .errors import ExitCode, OrchestratorError


def installed(package: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return out.returncode == 0 and "install ok installed" in out.stdout


def as_root(argv: list[str]) -> list[str]:
    return argv if os.geteuid() == 0 else ["sudo", *argv]


# apt on a slow mirror: generous, but a dead network must not hold `deps` for ever.
APT_TIMEOUT_SECONDS = 1800


def run(argv: list[str], say, cwd: pathlib.Path | None = None, root: bool = True) -> subprocess.CompletedProcess:
    """argv (as root unless root=False), its output kept; a failure is one sentence."""
    say("deps: " + " ".join(argv))
    try:
        got = subprocess.run(as_root(argv) if root else argv, cwd=cwd, capture_output=True, text=True,
                             stdin=subprocess.DEVNULL, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                             timeout=APT_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        got = subprocess.CompletedProcess(argv, 124, "", f"no end after {APT_TIMEOUT_SECONDS} s")
    if got.returncode:
        raise OrchestratorError(f"`{' '.join(argv)}` failed ({(got.stderr or got.stdout).strip()[-200:]}); "
                                "run it by hand to see why, then retry.", ExitCode.MISSING_HOST_TOOL)
    return got


def write_file(path: pathlib.Path, text: str) -> None:
    """A file under /etc written whole (a temp file renamed over it)."""
    if os.geteuid() == 0:
        cache.atomic_write(path, text)
        return
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    subprocess.run(["sudo", "tee", str(tmp)], input=text.encode(), check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["sudo", "mv", "-f", str(tmp), str(path)], check=True)
