"""Checks that host executables exist, naming the Debian package that provides each."""
from __future__ import annotations

import functools
import shutil
import subprocess
from typing import Mapping

from .errors import ExitCode, OrchestratorError


def require(tools: Mapping[str, str], purpose: str) -> None:
    """tools maps executable -> Debian package. Fails with one sentence listing what to install."""
    missing = {exe: pkg for exe, pkg in tools.items() if shutil.which(exe) is None}
    if missing:
        pkgs = " ".join(sorted(set(missing.values())))
        raise OrchestratorError(
            f"{', '.join(sorted(missing))} not found, needed for {purpose}; install it with "
            f"`apt-get install {pkgs}` (or run `make deps`).", ExitCode.MISSING_HOST_TOOL)


@functools.cache
def version_line(argv: tuple[str, ...]) -> str:
    """First non-empty line a tool prints about its version, or 'unavailable'."""
    try:
        out = subprocess.run(list(argv), capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
    for line in (out.stdout + out.stderr).splitlines():
        if line.strip():
            return line.strip()
    return "unavailable"
