"""Checks that host executables exist, naming the Debian package that provides each; the
environment the builds this tool runs are given."""
from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import time
from typing import Any, Mapping

from .errors import ExitCode, OrchestratorError


# What steers a kbuild (or GNU make itself) from the environment. A kernel developer
# exports these for their own builds (ARCH=arm64, CROSS_COMPILE=..., LLVM=1,
# KCFLAGS=-Werror, O=...), and an outer make hands its own down (MAKEFLAGS holds the
# command line of `make test ARCH=x86_64 JOBS=2` and its jobserver): this tool's builds
# take all of that from its own options and the arch table, never from there.
KBUILD_STEERING = frozenset({
    "ARCH", "SUBARCH", "SRCARCH", "CROSS_COMPILE", "LLVM", "LLVM_IAS", "O", "M", "W", "C", "V",
    "CC", "LD", "AR", "NM", "OBJCOPY", "OBJDUMP", "READELF", "STRIP", "PAHOLE",
    "HOSTCC", "HOSTCXX", "HOSTLD", "HOSTAR", "HOSTCFLAGS", "HOSTCXXFLAGS", "HOSTLDFLAGS", "HOSTLDLIBS",
    "KCFLAGS", "KAFLAGS", "KCPPFLAGS", "KRUSTFLAGS", "CFLAGS", "CPPFLAGS", "LDFLAGS",
    "EXTRA_CFLAGS", "EXTRA_AFLAGS", "EXTRA_LDFLAGS",
    "CFLAGS_KERNEL", "AFLAGS_KERNEL", "CFLAGS_MODULE", "AFLAGS_MODULE", "LDFLAGS_MODULE",
    "INSTALL_PATH", "INSTALL_MOD_PATH", "INSTALL_MOD_STRIP", "INSTALL_HDR_PATH", "INSTALL_DTBS_PATH",
    "LOCALVERSION", "KERNELRELEASE", "KERNELVERSION",
    "MAKEFLAGS", "MFLAGS", "GNUMAKEFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "MAKEFILES",
})
KBUILD_STEERING_PREFIXES = ("KBUILD_", "KCONFIG_")

# What a build takes from the process's environment: where the tools are, a home and a
# temporary dir, how ccache behaves. Every other variable is left out, named in
# KBUILD_STEERING or not: make reads each one as a variable (YACC, PERL, CHECK...), gcc
# reads CPATH, GCC_EXEC_PREFIX, and pkg-config PKG_CONFIG_PATH for the host tools. So
# what a build makes depends on these, the tools PATH finds (their versions are in the
# build's key) and what this tool sets (`ours`), nothing else.
BUILD_PASSES = frozenset({"PATH", "HOME", "TMPDIR", "XDG_CACHE_HOME"})
BUILD_PASSES_PREFIXES = ("CCACHE_",)


def build_environment(ours: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The environment for a build this tool runs: BUILD_PASSES of the process's own,
    with `ours` over it; and the exported names that steer kbuild or make, which it left
    out (for the run's record: the user may wonder why their ARCH= did nothing)."""
    left_out = sorted(name for name in os.environ
                      if name in KBUILD_STEERING or name.startswith(KBUILD_STEERING_PREFIXES))
    env = {k: v for k, v in os.environ.items() if k in BUILD_PASSES or k.startswith(BUILD_PASSES_PREFIXES)}
    env.update(ours)
    return env, left_out


def kill_group(proc: subprocess.Popen) -> None:
    """End a process started in its own session and everything it started (a make's
    recipe shells and compilers): SIGTERM to the group, SIGKILL after 10 s."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def run_tree(argv: list[str], input: bytes | str | None = None, **kwargs: Any) -> subprocess.CompletedProcess:
    """subprocess.run for the host commands this tool starts (make, git, tar, gcc...): in
    a session of its own, so a Ctrl-C, a SIGTERM (raised here as KeyboardInterrupt) or
    any other exception ends the whole tree, not only its first process, and with
    SIGTERM first: a git given the time removes its index.lock, where subprocess.run's
    SIGKILL leaves it to block the next run. timeout: seconds, then the tree is ended and
    subprocess.TimeoutExpired raised; check: CalledProcessError on a non-zero exit.
    stdin is /dev/null unless given."""
    timeout = kwargs.pop("timeout", None)
    check = kwargs.pop("check", False)
    if input is None and "stdin" not in kwargs:
        kwargs["stdin"] = subprocess.DEVNULL
    if kwargs.pop("capture_output", False):
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    proc = subprocess.Popen(argv, start_new_session=True, **kwargs)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            # A second at a time: the arches of a series run in threads (series/lanes.py),
            # and a thread told to stop hears it only between two waits.
            left = 1.0 if deadline is None else min(1.0, max(0.0, deadline - time.monotonic()))
            try:
                out, err = proc.communicate(input, timeout=left)
                break
            except subprocess.TimeoutExpired:
                if deadline is not None and time.monotonic() >= deadline:
                    raise subprocess.TimeoutExpired(argv, timeout) from None
                input = None   # sent already: communicate goes on from where it was
    except BaseException:
        kill_group(proc)
        raise
    if check and proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, argv, out, err)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


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
