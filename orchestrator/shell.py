"""`orchestrator shell` / `make shell`: the guest of an arch's last run, its console handed
to the terminal.

The same kernel and image as that run (its recorded QEMU command line, nothing rebuilt),
with ftracetest in /kto/ftrace and the project's cases in /kto/tcscripts. The guest's init
sees `kto.shell=1` on the command line and starts an interactive shell instead of the
command loop the orchestrator drives. The console is QEMU's multiplexed stdio: Ctrl-A x
ends QEMU, Ctrl-A c is its monitor; `reboot -f` ends it too (-no-reboot).
"""
from __future__ import annotations

import json
import os
import pathlib

from .errors import ExitCode, OrchestratorError

SHELL_ARG = "kto.shell=1"


def last_run(results_root: pathlib.Path, arch: str) -> pathlib.Path:
    """The newest run directory of `arch` under results_root that booted a guest."""
    runs = sorted((d for d in results_root.glob(f"*-{arch}-*") if (d / "results.json").is_file()),
                  key=lambda d: d.name, reverse=True)
    for run in runs:
        try:
            data = json.loads((run / "results.json").read_text())
        except (OSError, ValueError):
            continue
        if data.get("qemu_argv"):
            return run
    raise OrchestratorError(
        f"No run of {arch} in {results_root} booted a guest; run `make test ARCH={arch}` first "
        "(the shell boots that run's kernel and image).")


def shell_argv(run_dir: pathlib.Path) -> list[str]:
    """The run's QEMU command line with the console on the terminal and the shell asked for."""
    data = json.loads((run_dir / "results.json").read_text())
    argv = [str(a) for a in data["qemu_argv"]]
    if (data.get("boot_route") or {}).get("name") == "builtin" or "-append" not in argv:
        raise OrchestratorError(
            f"The {data.get('arch')} guest's command line is built into its kernel (the builtin boot "
            "route), so no shell can be asked for at boot; use a run over SSH or the console log.",
            ExitCode.BAD_INPUT)
    for flag in ("-kernel", "-initrd"):
        if flag in argv and not pathlib.Path(argv[argv.index(flag) + 1]).is_file():
            raise OrchestratorError(
                f"{argv[argv.index(flag) + 1]} ({flag} of run {run_dir.name}) is gone from the cache; "
                f"run `make test ARCH={data.get('arch')}` again to make it.")
    i = argv.index("-append")
    argv[i + 1] = f"{argv[i + 1]} {SHELL_ARG}"
    # mon:stdio: Ctrl-A x and the monitor, and the terminal in raw mode for the guest.
    argv[argv.index("-serial") + 1] = "mon:stdio"
    return argv


def run(results_root: pathlib.Path, arch: str, say=print) -> int:
    run_dir = last_run(results_root, arch)
    argv = shell_argv(run_dir)
    say(f"shell: {arch} guest of run {run_dir.name}; Ctrl-A x (or `reboot -f`) ends it")
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        raise OrchestratorError(f"Cannot start {argv[0]} ({exc.strerror}); install it with `make deps "
                                f"ARCH={arch}`.", ExitCode.MISSING_HOST_TOOL) from exc
    return int(ExitCode.OK)   # not reached: exec replaced this process
