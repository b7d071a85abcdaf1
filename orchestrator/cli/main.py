"""Command line: `orchestrator test --arch x86_64 [--kernel DIR] [--suite S]...`."""
from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import re
import signal
import sys

from .. import __version__
from ..cache import default_cache_root
from ..errors import ExitCode, OrchestratorError
from ..progress import Progress, printable
from ..project import (ACCELS, BOOT_TIMEOUT_SECONDS, CASE_TIMEOUT_SECONDS, DEFAULT_ARCH, MATRIX_SPEC,
                       PROJECT_ROOT, RESULTS_DIR, TCSCRIPTS_DIR, TRANSPORTS, seconds_option)
from ..results.confirm import DEFAULT_RETRIES
from ..kernel.trees import BUILTIN_TREES, DEFAULT_TREE
from ..suites.runner import DEFAULT_SUITES
from ..vm.emulators import DEFAULT_EMULATOR, EMULATORS


def for_terminal(text: str) -> str:
    """A one-line message that may quote user input (an arch name, a path): its control
    characters, line breaks and lone surrogates escaped."""
    return printable(text).replace("\n", "\\n")

def _qemu_option(parser: argparse.ArgumentParser, more: str = "") -> None:
    """--qemu, the same for every command that boots or installs. Options only: none of
    ARCH, QEMU, TRANSPORT is read from the environment (a kernel developer's exported ARCH
    is for their own builds; the Makefile passes what its command line gives)."""
    builds = ", ".join(f"{e.name} ({e.version}, {e.suite})" for e in EMULATORS.values())
    parser.add_argument("--qemu", choices=list(EMULATORS), default=None,
                        help=f"the QEMU build guests run on: {builds}; default: each arch's own (the arch "
                             f"table's default_qemu, else {DEFAULT_EMULATOR}){more}")


def _guests(text: str) -> int:
    from ..suites.pool import MAX_GUESTS
    if not text.isdigit() or not 1 <= int(text) <= MAX_GUESTS:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of guests from 1 to {MAX_GUESTS}")
    return int(text)


def _dirs_options(parser: argparse.ArgumentParser) -> None:
    """--results-dir and --cache-dir, as every command that runs guests takes them."""
    parser.add_argument("--results-dir", default=str(RESULTS_DIR),
                        help="where each run's directory goes (default results/ of this project; "
                             "results/latest points at the newest)")
    parser.add_argument("--cache-dir", default=None,
                        help="kernel trees, builds, images, ccache (default $ORCHESTRATOR_CACHE or "
                             "~/.cache/orchestrator)")


def _guests_option(parser: argparse.ArgumentParser) -> None:
    """--guests (JOBS= in make), the same for test and matrix."""
    parser.add_argument("--guests", type=_guests, default=None, metavar="N",
                        help="guests of the kernel sharing an arch's cases, each taking the next case "
                             "(default: one per host core, as far as memory holds them)")


class _Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP, handled like Ctrl-C so every finally block runs (no QEMU left)."""


def _on_signal(signum, frame):
    raise _Terminated(signal.Signals(signum).name)


def split_list(values: list[str] | None) -> list[str]:
    out: list[str] = []
    for v in values or []:
        out.extend(x for x in v.replace(",", " ").split() if x)
    return out


# Every path the user gives, by option and command, and what it must be: checked by one
# function before any work starts, so a loop, a file where a directory goes, or an empty
# value is one sentence and exit 2, never an exception later (after a 9-minute build).
# dir: an existing directory; new-dir: a directory, or where one can be made; new-file: a
# file, or where one can be written; file: an existing regular file; exists: either.
PATH_OPTIONS: dict[str, dict[str, str]] = {
    "test": {"results_dir": "new-dir", "cache_dir": "new-dir", "baseline": "exists", "tcdir": "dir",
             "rerun": "dir", "kernel": "kernel", "reply": "new-file", "series": "nonempty"},
    "matrix": {"spec": "file", "results_dir": "new-dir", "cache_dir": "new-dir", "baseline": "new-dir"},
    "workflow": {"spec": "file", "out": "new-file"},
    "report": {"out": "new-dir", "history": "dir", "runs": "dir"},
    "shell": {"results_dir": "dir"},
    "deps": {"cache_dir": "new-dir"},
}


def check_path(text: str, option: str, kind: str) -> None:
    """One sentence (exit 2) unless `text` is a path of this kind."""
    if kind == "kernel" and text in BUILTIN_TREES:
        return
    if text == "":
        raise OrchestratorError(f"{option} is empty; give it a value, or leave the option out for its default.")
    if kind == "nonempty" or (option == "--out" and text == "-"):
        return
    path = pathlib.Path(text).expanduser()
    try:
        resolved = path.resolve()
        resolved.exists()
    except RuntimeError as exc:   # pathlib's word for ELOOP while resolving
        raise OrchestratorError(f"{option} {text} goes round a symlink loop; point it at a real path.") from exc
    except OSError as exc:
        raise OrchestratorError(f"{option} {text} cannot be looked at ({exc.strerror}); give another path.") from exc
    existing = next(p for p in (resolved, *resolved.parents) if p.exists() or p == p.parent)
    if existing != resolved and not existing.is_dir():
        raise OrchestratorError(f"{option} {text}: {existing} is a file, not a directory; give a path under a "
                                "directory.")
    want = None if kind == "kernel" else kind   # source.user_tree says what a tree must hold
    if want == "dir" and not resolved.is_dir():
        raise OrchestratorError(f"{option} {text} is not a directory; give an existing directory.")
    if want == "new-dir" and resolved.exists() and not resolved.is_dir():
        raise OrchestratorError(f"{option} {text} is a file; give a directory (it is made if missing).")
    if want == "new-file" and resolved.exists() and not resolved.is_file():
        raise OrchestratorError(f"{option} {text} is a directory (or no regular file); give a file name.")
    if want == "file" and not resolved.is_file():
        raise OrchestratorError(f"{option} {text} is not a file; give an existing file.")
    if want == "exists" and not resolved.exists():
        raise OrchestratorError(f"{option} {text} does not exist; give an existing path.")


def check_paths(args: argparse.Namespace) -> None:
    """Every path-valued option of the command (and ORCHESTRATOR_CACHE), before any work."""
    env = os.environ.get("ORCHESTRATOR_CACHE")
    if env is not None:
        check_path(env, "ORCHESTRATOR_CACHE", "new-dir")
    for name, kind in PATH_OPTIONS.get(args.command, {}).items():
        value = getattr(args, name, None)
        for text in (value if isinstance(value, list) else [value]):
            if text is not None:
                check_path(text, f"--{name.replace('_', '-')}" if name != "runs" else "RUN_DIR", kind)


# The options that take comma-separated lists: given, each must name something, since an
# empty one would quietly mean the default (every case, the default suites, no fragment).
LIST_OPTIONS = ("suite", "kconfig", "case")


def check_lists(args: argparse.Namespace) -> None:
    for name in LIST_OPTIONS:
        given = getattr(args, name, None)
        if given is not None and not split_list(given):
            raise OrchestratorError(
                f"--{name} {' '.join(repr(v) for v in given)} names nothing; give one or more "
                "comma-separated values, or leave the option out for its default.", ExitCode.BAD_INPUT)


def _writable_dir(text: str, option: str) -> pathlib.Path:
    """The results directory, created if need be and written to once, before any work:
    finding out after a 9-minute build would lose what was measured."""
    path = pathlib.Path(text).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".orchestrator-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OrchestratorError(f"{option} {text} is not a writable directory ({exc.strerror}); "
                                "give a directory you can write to.") from exc
    return path


def _existing_dir(text: str | None, option: str, missing_ok: bool = False) -> pathlib.Path | None:
    """A directory the user named; a missing one is bad input (or nothing yet, for a
    first nightly run with no baseline restored)."""
    if not text:
        return None
    path = pathlib.Path(text).expanduser().resolve()
    if not path.is_dir():
        if missing_ok:
            return None
        raise OrchestratorError(f"{option} {text} is not a directory; give an existing directory.")
    return path


def _retries(text: str) -> int:
    if not text.isdigit() or int(text) > 20:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of retries from 0 to 20")
    return int(text)


def _repeat_times(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of runs from 1 to 1000")
    return int(text)


def _llvm(text: str) -> str:
    """kbuild's LLVM= as the arch table's toolchain follows it: 1 (clang, ld.lld...) or a
    version suffix (-19: clang-19...); empty is no LLVM."""
    if text and text != "1" and not re.fullmatch(r"-\d+", text):
        raise argparse.ArgumentTypeError(f"'{text}' is not LLVM=1 or a version suffix such as -19")
    return text


def _cross_compile(text: str) -> str:
    """A CROSS_COMPILE prefix: a toolchain's name or path up to the tool (aarch64-linux-gnu-)."""
    if not re.fullmatch(r"[A-Za-z0-9_.+/-]*", text):
        raise argparse.ArgumentTypeError(f"'{text}' is not a compiler prefix such as aarch64-linux-gnu-")
    return text


def _baseline_dir(text: str | None) -> pathlib.Path | None:
    from ..results import baseline
    path = _existing_dir(text, "--baseline")
    if path is not None:
        baseline.check(path)
    return path


def _cache_root(args: argparse.Namespace) -> pathlib.Path:
    return pathlib.Path(args.cache_dir).expanduser().resolve() if args.cache_dir else default_cache_root()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one sentence and the bad-input exit code
        self.print_usage(sys.stderr)
        print(f"orchestrator: error: {for_terminal(message)}; see `{self._help_command()}`.", file=sys.stderr)
        sys.exit(ExitCode.BAD_INPUT)

    def _help_command(self) -> str:
        """The --help that answers: the command's own. Unknown options are found by the
        top-level parser, whose prog names no command: the one on the command line."""
        words = self.prog.split()[1:]
        if not words:
            commands = [name for action in self._actions if isinstance(action, argparse._SubParsersAction)
                        for name in action.choices]
            words = [arg for arg in sys.argv[1:] if arg in commands][:1]
        return " ".join(["orchestrator", *words, "--help"])


# Errors of a series run that no other arch would end differently: bad input (the series,
# an option) and a series that does not apply to the tree. Any other ends that arch only.
SAME_ON_EVERY_ARCH = frozenset({ExitCode.BAD_INPUT, ExitCode.SERIES_DOES_NOT_APPLY, ExitCode.NO_CASES,
                                ExitCode.INTERRUPTED})


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="orchestrator", description=__doc__)
    p.add_argument("--version", action="version", version=f"orchestrator {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    t = sub.add_parser("test", help="build, boot and test one arch")
    t.add_argument("--arch", default=DEFAULT_ARCH,
                   help="arch name from the arch table (default x86_64); several, comma-separated, "
                        "or 'all' run one after another with one table at the end")
    t.add_argument("--kernel", default=None,
                   help="kernel tree to test: a built-in one by name (6.12: Debian's linux-source-6.12; "
                        "7.2: linux-source-7.2 from trixie-backports, fetched once), or a path (git or "
                        "plain dir); default " + DEFAULT_TREE)
    t.add_argument("--suite", action="append", default=None, metavar="NAME[,NAME]",
                   help=f"ftracetest test.d dirs, 'ftrace-all', 'tcscripts' or 'kprobe_multi' (the BPF "
                        f"kprobe_multi checks) (default {','.join(DEFAULT_SUITES)})")
    t.add_argument("--kconfig", action="append", default=None, metavar="FRAGMENT",
                   help="extra kconfig fragment (path, or a name in kconfigs/), applied last")
    _dirs_options(t)
    t.add_argument("--case-timeout", type=seconds_option, default=CASE_TIMEOUT_SECONDS,
                   help=f"seconds one case may take before it is ERROR (default {CASE_TIMEOUT_SECONDS:g})")
    t.add_argument("--boot-timeout", type=seconds_option, default=BOOT_TIMEOUT_SECONDS,
                   help=f"seconds from QEMU start to the guest shell (default {BOOT_TIMEOUT_SECONDS:g})")
    t.add_argument("--accel", choices=ACCELS, default="auto",
                   help="auto: KVM when /dev/kvm works (probed once per host boot), else TCG; tcg: no "
                        "probe; kvm: probe, and say so when it falls back to TCG")
    _qemu_option(t)
    _guests_option(t)
    t.add_argument("--llvm", type=_llvm, default=None, metavar="1|-19",
                   help="build with clang/LLVM for every arch (kbuild's LLVM=), instead of the table's toolchain")
    t.add_argument("--cross-compile", type=_cross_compile, default=None, metavar="PREFIX",
                   help="another CROSS_COMPILE prefix than the table's")
    t.add_argument("--series", default=None, metavar="MBOX|DIR|BASE..TIP|BRANCH",
                   help="patch series to apply (b4 am / git format-patch mbox, a directory of "
                        "*.patch, or a git range of the tree) on a worktree of the base")
    t.add_argument("--base", default=None, metavar="REV",
                   help="the commit the series goes on (default: the tree's HEAD, or the range's base)")
    t.add_argument("--compare-base", action="store_true",
                   help="also run the base (cached when unchanged) and report what the series changed")
    t.add_argument("--each-patch", nargs="?", const="build", choices=("build", "test"), default=None,
                   help="build every commit of the series and report the first that does not build; "
                        "--each-patch=test also boots and runs the suites on each")
    t.add_argument("--bisect", action="store_true",
                   help="when the series adds failures or splats, find the first patch that does "
                        "(implies --compare-base)")
    t.add_argument("--retries", type=_retries, default=DEFAULT_RETRIES, metavar="N",
                   help="run every case that differs from the base (or the baseline) N more times on each "
                        "side in fresh guests before calling it a difference; a case with mixed results is "
                        f"flaky, not a failure; also per bisect step (default {DEFAULT_RETRIES}; 0: take "
                        "the first results as they are)")
    t.add_argument("--reply", default=None, metavar="FILE",
                   help="with --series: write the mail a tester sends to the series' thread (In-Reply-To "
                        "its cover letter, the comparison per arch, Tested-by: when nothing regressed); "
                        "implies --compare-base")
    t.add_argument("--rerun", default=None, metavar="RUN_DIR",
                   help="run again, on the same kernel, the cases of an earlier run that did not pass "
                        "(e.g. results/latest), and show them beside their first result")
    t.add_argument("--shell-on-failure", action="store_true",
                   help="stop at the first case that fails and hand that guest's console to this "
                        "terminal (a shell in /kto/ftrace; Ctrl-] ends it); the run is then incomplete")
    t.add_argument("--case", action="append", default=None, metavar="GLOB[,GLOB]",
                   help="only the cases whose id (kprobe/kprobe_args_user.tc) or file name matches a "
                        "shell glob; repeatable (CASES=)")
    t.add_argument("--repeat", type=_repeat_times, default=None, metavar="N",
                   help="run the (selected) cases N times, each in a fresh guest on the same kernel, "
                        "and print each case's failure rate (REPEAT=)")
    t.add_argument("--until-fail", action="store_true",
                   help="with --repeat: stop at the first run in which a case fails")
    t.add_argument("--tcdir", default=None, metavar="DIR",
                   help="run the .tc cases of DIR as the tcscripts suite instead of the project's tcscripts/")
    t.add_argument("--transport", choices=TRANSPORTS, default="serial",
                   help="how commands reach the guest: its serial console (default), or SSH to a "
                        "dropbear in the guest over a port on 127.0.0.1 (the console is still logged)")
    t.add_argument("--cmdline", default="", metavar="ARGS",
                   help="append to the guest kernel's command line (e.g. 'ftrace=function')")
    t.add_argument("--baseline", default=None, metavar="RUN_DIR|DIR",
                   help="a previous run of the same arch (or a dir of runs: the newest complete one) "
                        "to report what changed since")
    m = sub.add_parser("matrix", help="run the cells of a matrix spec (matrix.yaml) one after another")
    m.add_argument("--spec", default=str(MATRIX_SPEC),
        help="the matrix file (arches x kernels; default matrix.yaml of this project)")
    m.add_argument("--cell", action="append", default=None, metavar="NAME",
                   help="only this cell (arch-kernel, e.g. x86_64-debian-6.12); repeatable")
    _dirs_options(m)
    m.add_argument("--baseline", default=None, metavar="DIR",
                   help="previous results: each cell is compared with its arch's newest complete run there")
    m.add_argument("--accel", choices=ACCELS, default="auto",
                   help="auto: KVM when /dev/kvm works (probed once per host boot), else TCG; tcg: no "
                        "probe; kvm: probe, and say so when it falls back to TCG")
    _qemu_option(m, " (every cell)")
    _guests_option(m)
    w = sub.add_parser("workflow", help="write the nightly CI workflow generated from a matrix spec")
    w.add_argument("--spec", default=str(MATRIX_SPEC),
        help="the matrix file (arches x kernels; default matrix.yaml of this project)")
    w.add_argument("--out", default="-", help="file to write (default: stdout)")
    r = sub.add_parser("report", help="render report.html, junit.xml and summary.txt again from "
                                      "results.json, merging several runs into one")
    r.add_argument("runs", nargs="*", metavar="RUN_DIR", help="run directories (results/<run>/)")
    r.add_argument("--history", default=None, metavar="DIR",
                   help="earlier runs (the nightly's artifacts, any depth): per arch x kernel, the counts "
                        "over time as a chart in report.html, new failures linked to their run")
    r.add_argument("--out", default=None,
                   help="directory for the merged report (default: each run's own dir for one run)")
    r.add_argument("--fail-on-regression", action="store_true",
                   help="exit 1 when a run did not complete or regressed against its baseline")
    sh = sub.add_parser("shell", help="boot the kernel and image of an arch's last run with its "
                                      "console on this terminal (an interactive shell in the guest)")
    sh.add_argument("--arch", default=DEFAULT_ARCH, help="whose last run to boot again (default x86_64)")
    sh.add_argument("--results-dir", default=str(RESULTS_DIR),
                    help="where each run's directory goes (default results/ of this project; "
                         "results/latest points at the newest)")
    sh.add_argument("--gdb", action="store_true",
                    help="QEMU's gdb stub on a free port of 127.0.0.1, and the gdb command line to attach "
                         "(the run's vmlinux and the tree's scripts/gdb helpers)")
    d = sub.add_parser("deps", help="install the host packages the arches need (apt-get)")
    d.add_argument("--arch", default=DEFAULT_ARCH,
                   help="arch name(s), comma-separated, or 'all'")
    d.add_argument("--transport", choices=TRANSPORTS, default="serial",
                   help="ssh: also install what the SSH transport needs and build the guests' dropbear")
    _qemu_option(d)
    d.add_argument("--cache-dir", default=None,
                   help="kernel trees, builds, images, ccache (default $ORCHESTRATOR_CACHE or "
                        "~/.cache/orchestrator)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress = Progress()
    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        check_paths(args)
        check_lists(args)
        if args.command == "test":
            from .. import arches
            from ..matrix import run as matrix
            from ..pipeline import TestOptions, run_test
            selected = arches.select(args.arch, args.qemu)
            opts = TestOptions(
                arch=selected[0].name, kernel=args.kernel or None, suites=split_list(args.suite),
                extra_kconfigs=split_list(args.kconfig),
                results_root=_writable_dir(args.results_dir, "--results-dir"), cache_root=_cache_root(args),
                case_timeout=args.case_timeout, boot_timeout=args.boot_timeout, accel=args.accel,
                llvm=args.llvm or None, cross_compile=args.cross_compile,
                baseline=_baseline_dir(args.baseline),
                tcscripts=_existing_dir(args.tcdir, "--tcdir") or TCSCRIPTS_DIR,
                cmdline=args.cmdline, transport=args.transport, retries=args.retries, qemu=args.qemu,
                shell_on_failure=args.shell_on_failure, guests=args.guests,
                cases=tuple(split_list(args.case)))
            if args.shell_on_failure and (args.guests or 1) > 1:
                raise OrchestratorError("--shell-on-failure hands one guest to this terminal: drop --guests "
                                        f"{args.guests} (JOBS=), it runs on one guest.")
            if args.shell_on_failure and (args.series or len(selected) > 1 or args.rerun):
                raise OrchestratorError("--shell-on-failure hands one guest to this terminal: give it one arch "
                                        "and no --series or --rerun.")
            if args.until_fail and not args.repeat:
                raise OrchestratorError("--until-fail stops a --repeat: give it --repeat N (REPEAT=N).")
            if args.repeat and (args.series or args.rerun or args.baseline or len(selected) > 1):
                raise OrchestratorError("--repeat runs cases of one arch on one kernel again and again: give it "
                                        "no --series, --rerun or --baseline, and one arch.")
            if args.repeat:
                from ..repeat import repeat
                return repeat(opts, progress, args.repeat, args.until_fail)
            if args.rerun:
                from ..rerun import rerun
                return rerun(opts, pathlib.Path(args.rerun).expanduser().resolve(), progress)[0]
            if args.series:
                from ..series.patches import check_spec
                from ..series.versus_base import SeriesOptions, run_series
                check_spec(args.series)
                sopts = SeriesOptions(args.series, args.base, args.compare_base or args.bisect or bool(args.reply),
                                      args.each_patch, args.bisect)
                if len(selected) == 1:
                    code, _, compare_dir = run_series(opts, sopts, progress)
                    codes, compare_dirs, failed = [code], [compare_dir] if compare_dir else [], []
                else:
                    from ..series.lanes import run_side_by_side

                    def one(arch: str, lane_progress) -> tuple[int, pathlib.Path | None]:
                        code, _, compare_dir = run_series(dataclasses.replace(opts, arch=arch), sopts, lane_progress)
                        return code, compare_dir
                    # The series' own fault on one arch (its build, its boot, a missing cross
                    # compiler) is that arch's verdict; the others still run. Bad input, or a
                    # series that does not apply, is the same on every arch.
                    lanes = run_side_by_side([a.name for a in selected], one, progress,
                                             fatal=lambda exc: exc.code in SAME_ON_EVERY_ARCH)
                    codes, compare_dirs, failed = [], [], []
                    for lane in lanes:
                        if lane.error is not None:
                            progress.say(f"orchestrator: {lane.arch}: {lane.error.message}")
                            codes.append(int(lane.error.code))
                            failed.append((lane.arch, lane.error.message))
                        else:
                            codes.append(lane.code)
                            if lane.compare_dir is not None:
                                compare_dirs.append(lane.compare_dir)
                    progress.say("series, per arch: " + "; ".join(
                        f"{a.name} exit {code}" for a, code in zip(selected, codes)))
                if args.reply and compare_dirs:
                    from ..series import reply
                    reply.write(pathlib.Path(args.reply), compare_dirs, failed)
                    progress.say(f"reply: {args.reply} (send it with `git send-email {args.reply}`)")
                elif args.reply:
                    progress.say(f"reply: none written, no arch got as far as a comparison ({failed[0][1]})")
                return max(codes)
            if args.base or args.compare_base or args.each_patch or args.bisect or args.reply:
                raise OrchestratorError("--base, --compare-base, --each-patch, --bisect and --reply need a "
                                        "series; give it with --series (SERIES=).")
            if len(selected) > 1 or args.arch.strip() == "all":
                return matrix.run(selected, opts, progress)
            return run_test(opts, progress)[0]
        if args.command == "matrix":
            from ..matrix import run as matrix, spec as matrixspec
            from ..pipeline import TestOptions
            spec = pathlib.Path(args.spec)
            cells = matrixspec.select(matrixspec.load(spec), split_list(args.cell))
            opts = TestOptions(
                arch=cells[0].arch, results_root=_writable_dir(args.results_dir, "--results-dir"),
                cache_root=_cache_root(args), accel=args.accel, qemu=args.qemu, guests=args.guests,
                baseline=_existing_dir(args.baseline, "--baseline", missing_ok=True))
            return matrix.run_cells(cells, opts, progress)
        if args.command == "workflow":
            from ..matrix import workflow as ciworkflow, spec as matrixspec
            spec = pathlib.Path(args.spec)
            rel = spec.resolve().relative_to(PROJECT_ROOT) if spec.resolve().is_relative_to(PROJECT_ROOT) else spec
            text = ciworkflow.render(matrixspec.load(spec), str(rel))
            if args.out == "-":
                sys.stdout.write(text)
            else:
                from ..cache import atomic_write
                atomic_write(pathlib.Path(args.out), text)
            return int(ExitCode.OK)
        if args.command == "report":
            from . import report as reportcmd
            if not args.runs and not args.history:
                raise OrchestratorError("report needs run directories (results/<run>/) or --history DIR.")
            return reportcmd.run([pathlib.Path(r) for r in args.runs],
                                 pathlib.Path(args.out) if args.out else None,
                                 args.fail_on_regression, say=progress.say,
                                 history_dir=pathlib.Path(args.history).expanduser() if args.history else None)
        if args.command == "shell":
            from .. import arches, shell
            (arch,) = arches.select(args.arch)[:1]
            return shell.run(pathlib.Path(args.results_dir).expanduser().resolve(), arch.name,
                             say=progress.say, gdb=args.gdb)
        if args.command == "deps":
            from . import deps
            from ..vm import emulators
            for build, group in emulators.by_build(args.arch, args.qemu):
                deps.install(group, _cache_root(args), say=progress.say, ssh=args.transport == "ssh", qemu=build)
            return int(ExitCode.OK)
    except OrchestratorError as exc:
        progress.clear()
        print(f"orchestrator: {for_terminal(exc.message)}", file=sys.stderr)
        return int(exc.code)
    except KeyboardInterrupt as exc:
        progress.clear()
        what = str(exc) or "SIGINT"
        print(f"orchestrator: interrupted ({what}); QEMU and make were stopped, results so far are kept.",
              file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - a bug is one line and exit 7, never a traceback
        from ..pipeline import internal_error
        progress.clear()
        print(f"orchestrator: {for_terminal(internal_error(exc))}", file=sys.stderr)
        return int(ExitCode.INFRA_ERROR)
    finally:
        # The work is over and its results written: a SIGTERM from here on (while the
        # verdict prints, at interpreter exit) gets the handler it had before (for the
        # command: the default action, the end of the process), instead of raising where
        # nothing catches it (a traceback).
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return int(ExitCode.BAD_INPUT)


def console_main() -> int:
    """The `orchestrator` command and `python -m orchestrator`: main(), and a signal that
    lands while main() is already reporting another end is one line, not a traceback."""
    try:
        return main()
    except KeyboardInterrupt:
        print("orchestrator: interrupted while finishing; results so far are kept.", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
