"""`orchestrator shell` / `make shell`: the guest of an arch's last run, its console handed
to the terminal.

The same kernel and image as that run (its recorded QEMU command line, nothing rebuilt; a
later build into the same build dir replaces the kernel at that path, so it is the newest),
with ftracetest in /kto/ftrace and the project's cases in /kto/tcscripts. The guest's init
sees `kto.shell=1` on the command line and starts an interactive shell instead of the
command loop the orchestrator drives. The console is QEMU's multiplexed stdio: Ctrl-A x
ends QEMU, Ctrl-A c is its monitor; `reboot -f` ends it too (-no-reboot).

With gdb=True QEMU's gdb stub listens on a free port of 127.0.0.1 (never another address),
and the gdb command line to attach is printed: the run's vmlinux, with the build dir as an
auto-load safe path so gdb loads the tree's scripts/gdb helpers (vmlinux-gdb.py, made in
the out-of-tree build dir by CONFIG_GDB_SCRIPTS) from beside it.

hand_over (`test --shell-on-failure`) gives the terminal the console of a guest a run is
driving, at the first case that failed in it.
"""
from __future__ import annotations

import os
import pathlib
import platform
import shlex
import shutil
import socket

from . import cache
from .arches import get_arch
from .kernel import build, treeview
from .errors import ExitCode, OrchestratorError
from .results.recorder import load_run
from .vm.emulators import EMULATORS

SHELL_ARG = "kto.shell=1"


def last_run(results_root: pathlib.Path, arch: str) -> pathlib.Path:
    """The newest run directory of `arch` under results_root that booted a guest."""
    runs = sorted((d for d in results_root.glob(f"*-{arch}-*") if (d / "results.json").is_file()),
                  key=lambda d: d.name, reverse=True)
    unreadable: list[str] = []
    for run in runs:
        try:
            data = load_run(run)
        except OrchestratorError as exc:
            unreadable.append(exc.message.split("; give ")[0])
            continue
        if data.qemu_argv:
            return run
    raise OrchestratorError(
        f"No run of {arch} in {results_root} booted a guest; run `make test ARCH={arch}` first "
        "(the shell boots that run's kernel and image)"
        + (f"; passed over {len(unreadable)} unreadable: {unreadable[0]}" if unreadable else "") + ".")


def allowed_qemu(arch_name: str, binary: str) -> bool:
    """Whether a results.json's QEMU may be run: the arch table's binary for that arch,
    the host's (on PATH) or a build the cache unpacked (<cache>/qemu/<build>/root/usr/bin).
    results.json is a file anyone can hand over: its argv[0] is not run on its word."""
    try:
        name = get_arch(arch_name).qemu.binary
    except OrchestratorError:
        return False
    if binary == name:
        return True
    path = pathlib.PurePosixPath(binary)
    builds = {f"{e.name}-{e.version}" for e in EMULATORS.values()}
    return path.is_absolute() and path.name == name and ".." not in path.parts and \
        path.parent.parts[-3:] == ("root", "usr", "bin") and len(path.parts) > 6 and \
        path.parts[-6] == "qemu" and path.parts[-5] in builds


def shell_argv(run_dir: pathlib.Path) -> list[str]:
    """The run's QEMU command line with the console on the terminal and the shell asked for."""
    run = load_run(run_dir)
    argv = list(run.qemu_argv)
    if argv and not allowed_qemu(run.arch, argv[0]):
        raise OrchestratorError(
            f"results/{run_dir.name}/results.json names {argv[0]!a} as the {run.arch} QEMU, which is neither "
            "the arch table's nor a build this tool unpacks; run `make test` again to make a run to boot.")
    if (run.boot_route is not None and run.boot_route.name == "builtin") or "-append" not in argv:
        raise OrchestratorError(
            f"The {run.arch} guest's command line is built into its kernel (the builtin boot "
            f"route), so no shell can be asked for at boot; read results/{run_dir.name}/console.log instead.",
            ExitCode.BAD_INPUT)
    for flag in ("-kernel", "-initrd"):
        if flag in argv and not pathlib.Path(argv[argv.index(flag) + 1]).is_file():
            raise OrchestratorError(
                f"{argv[argv.index(flag) + 1]} ({flag} of run {run_dir.name}) is gone from the cache; "
                f"run `make test ARCH={run.arch}` again to make it.")
    i = argv.index("-append")
    argv[i + 1] = f"{argv[i + 1]} {SHELL_ARG}"
    # mon:stdio: Ctrl-A x and the monitor, and the terminal in raw mode for the guest.
    argv[argv.index("-serial") + 1] = "mon:stdio"
    return argv


# Ctrl-] gives the terminal back, as telnet's escape does.
SHELL_ESCAPE = "\x1d"


def hand_over(session, case_id: str, status: str, index: int, total: int, say=print) -> None:
    """The guest the case just failed in, its console on this terminal: an interactive
    shell in /kto/ftrace, as the case left the guest (its events, its trace). Everything
    it prints still goes to console.log. Ctrl-] ends it; then the run ends as incomplete."""
    child = getattr(session, "child", None)
    if child is None or not session.alive:
        say(f"shell-on-failure: {case_id} {status}, but its guest is gone (the case ended it); "
            "`make shell` boots the same kernel and image")
        return
    if not os.isatty(0):
        say(f"shell-on-failure: {case_id} {status}; stdin is not a terminal, so no shell is handed over")
        return
    say(f"shell-on-failure: {case_id} {status} (case {index} of {total}); the guest is yours: "
        "ftracetest in /kto/ftrace, the case's logs in /tmp/kto; Ctrl-] ends it")
    log = session.console_log
    def keep(data: bytes) -> bytes:
        log.write(data)
        log.flush()
        return data
    child.sendline(b"stty echo; cd /kto/ftrace; PS1='kto# ' setsid cttyhack sh -i")
    child.interact(escape_character=SHELL_ESCAPE, output_filter=keep)


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gdb_command(run_dir: pathlib.Path, port: int) -> list[str]:
    """The gdb argv that attaches to the stub, with the run's vmlinux and the tree's helpers."""
    run = load_run(run_dir)
    built = run.stages.build
    build_dir = pathlib.Path(built.build_dir if built is not None and built.build_dir else "")
    vmlinux = build_dir / "vmlinux"
    if not vmlinux.is_file():
        raise OrchestratorError(f"The vmlinux of run {run_dir.name} ({vmlinux}) is gone from the cache; "
                                f"run `make test ARCH={run.arch}` again to make it.")
    # gdb itself debugs only the host's arch (the arch table's native host machines, those
    # KVM could run it on); gdb-multiarch (Debian's package) any other.
    native = platform.machine() in get_arch(run.arch).kvm.host_machines
    argv = ["gdb" if native else "gdb-multiarch", "-iex", f"add-auto-load-safe-path {build_dir}"]
    view = treeview.TreeView.from_record((cache.read_json(build_dir / build.STAMP) or {}).get("view") or {})
    if view is not None:
        # Built in the tree view: its debug info names the view's paths; `list` shows the tree's.
        argv += ["-iex", f"set substitute-path {view.seen_tree} {view.tree}"]
    return argv + ["-ex", f"target remote 127.0.0.1:{port}", str(vmlinux)]


def run(results_root: pathlib.Path, arch: str, say=print, gdb: bool = False) -> int:
    run_dir = last_run(results_root, arch)
    argv = shell_argv(run_dir)
    if gdb:
        port = _free_loopback_port()
        attach = gdb_command(run_dir, port)
        # nokaslr: the symbols of vmlinux are where the kernel runs.
        argv[argv.index("-append") + 1] += " nokaslr"
        argv += ["-gdb", f"tcp:127.0.0.1:{port}"]
        say(f"gdb: {shlex.join(attach)}")
        if shutil.which(attach[0]) is None:
            say(f"gdb: {attach[0]} is not installed here: `apt-get install {attach[0]}`")
        if not (pathlib.Path(attach[-1]).parent / "vmlinux-gdb.py").exists():
            say("gdb: this build has no vmlinux-gdb.py (it predates CONFIG_GDB_SCRIPTS in kconfigs/"
                "base.config): gdb attaches without the lx- helpers; `make test` again builds them")
    say(f"shell: {arch} guest of run {run_dir.name}; Ctrl-A x (or `reboot -f`) ends it")
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        raise OrchestratorError(f"Cannot start {argv[0]} ({exc.strerror}); install it with `make deps "
                                f"ARCH={arch}`.", ExitCode.MISSING_HOST_TOOL) from exc
    return int(ExitCode.OK)   # not reached: exec replaced this process
