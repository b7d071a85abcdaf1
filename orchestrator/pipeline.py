"""The `test` job for one arch: source -> config -> build -> image -> boot -> suites -> results."""
from __future__ import annotations

import dataclasses
import pathlib
import platform
import shutil
import signal
import subprocess
from typing import BinaryIO, Callable

from . import __version__, cache, hosttools, shell
from .arches import Arch, get_arch, with_toolchain
from .errors import ExitCode, OrchestratorError
from .guest import bootroute, dropbear, guestprog, image
from .kernel import build, buildwarn, pahole, source, symbolize
from .kernel.fragments import Fragments, fragments_for
from .kernel.kconfig import ConfigFailed, check_user_fragments
from .kernel.trees import BUILTIN_TREES, DEFAULT_TREE
from .model import Accel, CaseResult, ConfigOutcome, RunRecord, Taint
from .progress import Progress, fmt_duration
from .project import (BOOT_TIMEOUT_SECONDS, CASE_TIMEOUT_SECONDS, IMAGES_DIR, PROJECT_ROOT, RESULTS_DIR,
                      TCSCRIPTS_DIR)
from .results import baseline, history, report, summary
from .results.confirm import DEFAULT_RETRIES
from .results.recorder import Recorder, failures_after_poisoning_splat, new_run_id, point_latest
from .suites.case_id import test_of
from .suites import pool
from .suites.runner import DEFAULT_SUITES, CaseSpec, GuestRunner, list_cases, not_built
from .suites.splats import SplatDetector
from .suites.status import FAILING, counts_line
from .vm import emulators, qemu
from .vm.console import ConsoleSession
from .vm.ssh import SshSession
from .vm.transport import GuestDied, GuestTimeout, Transport, TransportLost


@dataclasses.dataclass
class TestOptions:
    """What one run of one arch is asked to do. The defaults are every front door's (the
    command line, the matrix, the pytest plugin): each passes only what its user gave."""
    arch: str
    kernel: str | None = None         # None: the built-in default tree
    suites: list[str] = dataclasses.field(default_factory=list)   # empty: DEFAULT_SUITES
    extra_kconfigs: list[str] = dataclasses.field(default_factory=list)
    results_root: pathlib.Path = RESULTS_DIR
    cache_root: pathlib.Path = dataclasses.field(default_factory=cache.default_cache_root)
    case_timeout: float = CASE_TIMEOUT_SECONDS
    boot_timeout: float = BOOT_TIMEOUT_SECONDS
    accel: str = "auto"               # auto | kvm | tcg
    llvm: str | None = None           # LLVM= for every arch (overrides the table)
    cross_compile: str | None = None  # CROSS_COMPILE= prefix (overrides the table)
    # A previous run of the same cell (its dir, or a dir holding runs): the results say
    # what changed since then (results.json "baseline").
    baseline: pathlib.Path | None = None
    # The .tc cases of the tcscripts suite (default: the project's tcscripts/).
    tcscripts: pathlib.Path = TCSCRIPTS_DIR
    # Appended to the kernel command line (built in on a "builtin" boot route).
    cmdline: str = ""
    # How commands reach the guest: "serial" (its console) or "ssh" (vm/ssh.py).
    transport: str = "serial"
    # Tries after the first run, in fresh guests, of every case that differs from the
    # base or the baseline, and per bisect step (results/confirm.py); 0: none.
    retries: int = DEFAULT_RETRIES
    # Stop at the first case that fails and hand that guest's console to the terminal.
    shell_on_failure: bool = False
    # The QEMU build asked for (vm/emulators.py): Debian's 7.2 or bookworm-backports' 10.0;
    # None: the arch's own default (qemu_build).
    qemu: str | None = None
    # Guests sharing the run's cases (suites/pool.py); None: one per host core, as memory allows.
    guests: int | None = None

    def __post_init__(self) -> None:
        if not self.suites:
            self.suites = list(DEFAULT_SUITES)

    @property
    def qemu_build(self) -> str:
        """The QEMU build this run's arch boots on: the one asked for, else the arch's."""
        return emulators.build_for(self.arch, self.qemu)


def _project_revision() -> str:
    out = subprocess.run(["git", "-C", str(PROJECT_ROOT), "describe", "--always", "--dirty"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def session_factory(arch: Arch, transport: str, argv: list[str], console_log: BinaryIO,
                    observer: Callable[[str], None],
                    started: list[Transport]) -> Callable[[], Transport]:
    """What GuestRunner starts for each boot (appended to `started`): a console session,
    or an SSH one (which adds the network card and its port forward at each start)."""
    def start() -> Transport:
        if transport == "ssh":
            assert arch.ssh is not None   # check_inputs refused an arch without it
            session: Transport = SshSession(argv, console_log, arch.ssh.net_device, observer)
        else:
            session = ConsoleSession(argv, console_log, observer)
        started.append(session)
        return session
    return start


def transport_record(transport: str, started: list[Transport]) -> dict:
    if transport != "ssh":
        return {"name": transport}
    return {"name": "ssh", "connects": sum(s.connects for s in started)}


def build_only(opts: TestOptions, tree: source.KernelTree, progress: Progress) -> build.BuildResult:
    """Config and build as run_test does them (with the boot route's part), no boot."""
    arch = arch_of(opts)
    fragments = fragments_for(arch, opts.extra_kconfigs)
    route = None
    if arch.boot_route == "builtin":
        img = image.build_image(tree, arch, opts.cache_root, None,
                                guestprog.programs_for(opts.suites, tree.path), say=progress.say,
                                tcscripts=opts.tcscripts, with_sshd=opts.transport == "ssh")
        route = _builtin_route(opts, tree, arch, img.path)
    return _configure_and_build(opts, tree, arch, fragments, route, progress)


def _builtin_route(opts: TestOptions, tree: source.KernelTree, arch: Arch,
                   initramfs: pathlib.Path) -> bootroute.BuiltinBoot:
    return bootroute.prepare(arch, tree, build.build_dir_for(opts.cache_root, tree, arch),
                             initramfs, qemu.kernel_cmdline(arch, opts.cmdline))


def _configure_and_build(opts: TestOptions, tree: source.KernelTree, arch: Arch,
                         fragments: Fragments, route: bootroute.BuiltinBoot | None,
                         progress: Progress) -> build.BuildResult:
    """What the boot route builds in (DTB, initramfs) is part of the build and its key;
    modules only on the direct route (a built-in initramfs cannot take them)."""
    return build.configure_and_build(tree, arch, fragments.all, opts.cache_root, progress,
                                     route.config if route else None, route.digest if route else "",
                                     build_modules=route is None)


def source_tree(opts: TestOptions, progress: Progress) -> source.KernelTree:
    """KERNEL=: a built-in tree's name (6.12, 7.2), else a path; none: the default tree."""
    name = opts.kernel or DEFAULT_TREE
    if name in BUILTIN_TREES:
        return source.builtin_tree(name, opts.cache_root, say=progress.say)
    return source.user_tree(name)


def arch_of(opts: TestOptions) -> Arch:
    """The arch a run builds and boots: its table row on the run's QEMU build, with the
    run's toolchain and that build's binary and firmware."""
    arch = with_toolchain(get_arch(opts.arch, opts.qemu_build), opts.llvm, opts.cross_compile)
    return emulators.apply(arch, opts.qemu_build, opts.cache_root)


def inputs_digest(opts: TestOptions) -> str:
    """Everything but the kernel tree that decides a run's results: the arch and its
    toolchain (with versions), the fragments, the guest's recipe (images/, the .tc cases),
    the suites, timeouts, command line, transport and accel, and the QEMU version. A base
    run is reused, and a case's history kept, only for the same digest."""
    arch = arch_of(opts)
    files = fragments_for(arch, opts.extra_kconfigs).all
    for top in (IMAGES_DIR, opts.tcscripts):
        files += sorted(p for p in top.rglob("*") if p.is_file())
    parts = [f"{p.relative_to(PROJECT_ROOT) if p.is_relative_to(PROJECT_ROOT) else p}\0{cache.file_digest(p)}"
             for p in files]
    versions = sorted(f"{k}={v}" for k, v in build.toolchain_versions(arch).items())
    return cache.digest(arch.name, " ".join(arch.make_vars()), ",".join(opts.suites),
                        str(opts.case_timeout), str(opts.boot_timeout), opts.cmdline, opts.transport,
                        opts.accel, hosttools.version_line((arch.qemu.binary, "--version")),
                        *versions, *parts)


def base_pointer(opts: TestOptions, tree_id: str, digest: str | None = None) -> pathlib.Path:
    """Where the newest complete run of every case of a tree with these inputs is named:
    the base a series on that tree is compared with (series/versus_base.py). digest: the
    run's inputs_digest when the caller already has it."""
    digest = digest or inputs_digest(opts)
    return opts.cache_root / "baselines" / f"{cache.digest(tree_id, digest)[:24]}.json"


@dataclasses.dataclass
class RunContext:
    """What a series run adds to a plain one (series/versus_base.py)."""
    tree: source.KernelTree | None = None     # built instead of the opts' tree
    label: str = ""                           # base | series | bisect-3, in the run id
    series: dict | None = None                # recorded as results.json "series"
    only_cases: frozenset[str] | None = None  # run just these case ids (bisect steps)
    warning_files: tuple[str, ...] = ()       # compile these again for their warnings
    quiet: bool = False                       # a try (results/confirm.py): one line at the end


def guest_count(opts: TestOptions, arch: Arch, cases: int) -> tuple[int, str]:
    """How many guests share the run's cases, and why that many."""
    if opts.shell_on_failure:
        return 1, "--shell-on-failure hands one guest's console to the terminal"
    if opts.guests is not None:
        return max(1, min(opts.guests, cases)), f"--guests {opts.guests}"
    return pool.default_guests(arch.qemu.memory, cases)


def run_meta(opts: TestOptions, arch: Arch, tree: source.KernelTree, fragments: Fragments,
             label: str = "", series: dict | None = None) -> dict:
    """What results.json says about a run before it starts."""
    return {
        "arch": arch.name,
        "label": label or None,
        "kernel": {"version": tree.version, "origin": str(tree.origin), "path": str(tree.path),
                   "tree_id": tree.tree_id, "git_commit": tree.git_commit, "release": None},
        "series": series,
        "suites": opts.suites,
        "fragments": [str(p) for p in fragments.all],
        "host": {"machine": platform.machine(), "kernel": platform.release()},
        "versions": {"orchestrator": f"{__version__} ({_project_revision()})",
                     "qemu": hosttools.version_line((arch.qemu.binary, "--version")),
                     "qemu_build": opts.qemu_build},
        "accel": None, "config": None, "taint": None,
    }


def internal_error(exc: BaseException) -> str:
    """The one line for an exception that is not an OrchestratorError: a bug."""
    import traceback
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" at {pathlib.Path(where.filename).name}:{where.lineno}" if where else ""
    return (f"internal error: {type(exc).__name__}: {str(exc)[:200]}{at}; this is a bug of the "
            "orchestrator: the results measured so far are kept; please report it with results.json")


def verdict_of(cases: list[CaseResult], splat_count: int) -> tuple[str, ExitCode]:
    failing = [c for c in cases if c.status in FAILING]
    if failing or splat_count:
        return ((f"{len(failing)} failing case(s)" if failing else "no failing case")
                + (f", {splat_count} kernel splat(s)" if splat_count else ""), ExitCode.TEST_FAILURES)
    return "all cases passed or were skipped with a reason", ExitCode.OK


def _finish_if_possible(recorder: Recorder, state: str, verdict: str, code: int) -> None:
    """Record the end; on a full disk results.json keeps its last whole state (written by
    rename), which is never 'complete'."""
    try:
        recorder.finish(state, verdict, code)
    except OrchestratorError:
        pass


@dataclasses.dataclass
class PreparedGuest:
    """A built kernel and image for one arch, and the QEMU command line that boots them."""
    arch: Arch
    argv: list[str]
    accel: qemu.Accel
    build: build.BuildResult
    image: image.ImageResult
    boot_route: dict          # results.json "boot_route"


def check_inputs(opts: TestOptions, arch: Arch, host_tools: bool = True) -> Fragments:
    """Bad input and missing host tools, before any work (even fetching the tree); the
    kconfig fragments. host_tools=False: only listing cases (pytest --collect-only), which
    needs no compiler or QEMU."""
    fragments = fragments_for(arch, opts.extra_kconfigs)
    if not host_tools:
        return fragments
    hosttools.require(dict(arch.toolchain), f"building the {arch.name} kernel")
    emulators.require(arch, opts.qemu_build)
    if opts.transport == "ssh":
        dropbear.require_ssh(arch)
    return fragments


def prepare_guest(opts: TestOptions, tree: source.KernelTree, progress: Progress,
                  recorder: Recorder | None = None,
                  fragments: Fragments | None = None) -> PreparedGuest:
    """Config, build and image for opts.arch under one lock in the cache, so parallel
    processes (pytest-xdist workers) make them once and the others find them reused;
    recorded as the build and image stages when a recorder is given. fragments: the
    fragments as the caller already checked them (else checked here)."""
    arch = arch_of(opts)
    if fragments is None:
        fragments = check_inputs(opts, arch)
        check_user_fragments(fragments.user, tree.path, arch.srcarch)
    programs = guestprog.programs_for(opts.suites, tree.path)
    with_sshd = opts.transport == "ssh"
    stages = recorder or _NoRecorder()
    def image_stage(modules: pathlib.Path | None) -> image.ImageResult:
        stages.stage_started("image")
        try:
            img = image.build_image(tree, arch, opts.cache_root, modules, programs, say=progress.say,
                                    tcscripts=opts.tcscripts, with_sshd=with_sshd)
        except OrchestratorError as exc:
            stages.stage_finished("image", "failed", error=exc.message)
            raise
        stages.stage_finished("image", reused=img.reused, path=str(img.path), bytes=img.size,
                              **({"program_errors": img.program_errors} if img.program_errors else {}))
        return img

    # One build at a time on this machine, whichever run or worker asks.
    with cache.file_lock(opts.cache_root / "locks" / "prepare.lock", "kernel builds and images",
                         on_wait=progress.say):
        route, img = None, None
        if arch.boot_route == "builtin":
            # No modules: they come from the build the image is linked into.
            img = image_stage(None)
            route = _builtin_route(opts, tree, arch, img.path)
        stages.set("boot_route", boot_route_record(route))
        stages.stage_started("build")
        try:
            b = _configure_and_build(opts, tree, arch, fragments, route, progress)
        except ConfigFailed as exc:
            stages.set("config", ConfigOutcome(dropped=exc.dropped))
            stages.stage_finished("build", "failed", error=exc.message)
            raise
        except build.BuildFailed as exc:
            if recorder is not None:
                build.copy_log(recorder.dir, exc.log)
            stages.stage_finished("build", "failed", error=exc.message, first_errors=exc.first_errors)
            raise
        except OrchestratorError as exc:
            stages.stage_finished("build", "failed", error=exc.message)
            raise
        if recorder is not None:   # what run_test keeps of the build, for the same report
            build.copy_log(recorder.dir, b.log)
            shutil.copyfile(b.dotconfig, recorder.dir / "config")
            recorder.set_versions(**b.toolchain)
        stages.set("config", ConfigOutcome(dropped=b.dropped, notes=pahole.notes(tree.path)))
        stages.stage_finished("build", reused=b.reused, build_dir=str(b.build_dir), steps=b.steps,
                              config_seconds=round(b.config_seconds, 1), make_command=b.make_command,
                              make_environment=b.make_environment,
                              ignored_environment=b.ignored_environment)
        progress.say(f"build {arch.name}: " + (f"reused {b.build_dir}" if b.reused else
                                               f"{b.steps} steps in {fmt_duration(b.build_seconds)}"))
        if img is None:
            img = image_stage(b.modules)
    accel = qemu.choose_accel(arch, b.kernel_image, opts.cache_root, opts.accel, say=progress.say)
    return PreparedGuest(arch, qemu.qemu_argv(arch, b.kernel_image, img.path, accel, opts.cmdline),
                         accel, b, img, boot_route_record(route))


def boot_failure(exc: Exception, boot_timeout: float) -> str:
    """Why a guest did not reach its shell, in a few words (GuestDied, TransportLost or
    GuestTimeout from GuestRunner.boot)."""
    if isinstance(exc, GuestDied):
        return "QEMU exited"
    if isinstance(exc, TransportLost):
        return f"SSH: {exc}"
    return f"no shell within {boot_timeout:g}s"


def boot_route_record(route: bootroute.BuiltinBoot | None) -> dict:
    if route is not None:
        return {"name": "builtin", "what": route.description}
    return {"name": "direct", "what": "QEMU -kernel/-initrd/-append"}


class _NoRecorder:
    """prepare_guest without a run to record into (a pytest worker)."""

    def set(self, key: str, value) -> None:
        pass

    def stage_started(self, name: str) -> None:
        pass

    def stage_finished(self, name: str, state: str = "done", **info) -> None:
        pass


def run_test(opts: TestOptions, progress: Progress,
             ctx: RunContext | None = None) -> tuple[int, RunRecord]:
    """Exit code and the run's record. A failing stage raises OrchestratorError with the
    record so far as `.results` (for the matrix table)."""
    run = _Run(opts, progress, ctx or RunContext())
    error: OrchestratorError | None = None   # gets the results once close() has recorded all
    try:
        run.prepare()
        run.boot()
        run.run_suites()
        code = run.finish()
    except OrchestratorError as exc:
        _finish_if_possible(run.recorder, "failed", exc.message, int(exc.code))
        error = exc
        raise
    except OSError as exc:
        # The results disk filled up (or went away) under console.log or a case's record.
        error = cache.disk_error(pathlib.Path(exc.filename or run.recorder.dir), exc)
        _finish_if_possible(run.recorder, "failed", error.message, int(error.code))
        raise error from exc
    except Exception as exc:
        # A bug of ours (or of a library): the run's state says so, with the exception, and
        # every result already measured stays; the user sees one line and exit 7.
        error = OrchestratorError(internal_error(exc), ExitCode.INFRA_ERROR)
        _finish_if_possible(run.recorder, "error", error.message, int(error.code))
        raise error from exc
    except BaseException:
        # A second Ctrl-C (or a signal forwarded by a wrapper such as timeout(1)) must not
        # cut the write of what was measured: the process is on its way out anyway.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        _finish_if_possible(run.recorder, "incomplete",
                            "interrupted before the end; the cases listed are all that ran",
                            int(ExitCode.INTERRUPTED))
        raise
    finally:
        run.close()
        if error is not None:
            error.results = run.recorder.record
    # After close(): a splat it caught late is part of the record.
    return code, run.recorder.record


class _Run:
    """One run of run_test, stage by stage: its inputs are checked and its results dir
    opened on construction; prepare, boot, run_suites, finish; close whatever happened."""

    def __init__(self, opts: TestOptions, progress: Progress, ctx: RunContext):
        self.opts, self.progress, self.ctx = opts, progress, ctx
        self.arch = arch_of(opts)
        self.fragments = check_inputs(opts, self.arch)
        self.tree = ctx.tree or source_tree(opts, progress)
        check_user_fragments(self.fragments.user, self.tree.path, self.arch.srcarch)
        cases = list_cases(self.tree.path, opts.suites, self.arch.syscall_prefix, opts.tcscripts)
        if ctx.only_cases is not None:
            # A case's spec is its file: "x.tc (instance)" asks for x.tc, which runs both.
            wanted = {test_of(case_id) for case_id in ctx.only_cases}
            cases = [c for c in cases if c.id in wanted]
        self.cases = cases
        self.guests, self.guests_why = guest_count(opts, self.arch, len(cases))
        run_id = new_run_id(self.arch.name) + (f"-{ctx.label}" if ctx.label else "")
        self.recorder = Recorder(opts.results_root, run_id,
                                 run_meta(opts, self.arch, self.tree, self.fragments, ctx.label, ctx.series))
        if not cases and ctx.only_cases is None:
            # A run that tested nothing is no pass: an empty --tcdir, a suite dir with no
            # case. Said before any build, and recorded as incomplete.
            message = (f"No case to run: the suites {', '.join(opts.suites)} hold no case in "
                       f"{self.tree.path} (tcscripts: {opts.tcscripts}); give --suite a suite that has "
                       "cases, or --tcdir a directory holding .tc files.")
            self.recorder.finish("incomplete", message, int(ExitCode.NO_CASES))
            raise OrchestratorError(message, ExitCode.NO_CASES)
        progress.say(f"{self.arch.name}: Linux {self.tree.version} from {self.tree.origin}; "
                     f"{len(cases)} cases"
                     + (f" on {self.guests} guests" if self.guests > 1 else "") + f"; results in {self.recorder.dir}")
        self.console_log = open(self.recorder.dir / "console.log", "wb")
        self.detector = SplatDetector()
        self.runner: GuestRunner | None = None   # the first guest's; with --guests N, runners[1:] too
        self.runners: list[GuestRunner] = []
        self.detectors: list[SplatDetector] = [self.detector]
        self.extra_logs: list[BinaryIO] = []   # guest 2..N's console logs
        self.board: pool.Board | None = None    # their shared status line
        self.stopped_at: str | None = None   # the case a --shell-on-failure stopped at
        self.sessions: list[Transport] = []
        self.prepared: PreparedGuest | None = None
        self._decoded: dict[tuple[int, str], list[dict] | None] = {}   # splat -> its frames

    def prepare(self) -> None:
        """Config, build, image (under the cache's lock)."""
        recorder, progress = self.recorder, self.progress
        self.prepared = prepare_guest(self.opts, self.tree, progress, recorder, self.fragments)
        b, img = self.prepared.build, self.prepared.image
        if self.ctx.warning_files:
            progress.status("compiler warnings of the .c files the series touches")
            recorder.set("build_warnings", buildwarn.warnings_for(b.build_dir, self.ctx.warning_files))
        for d in b.dropped:
            progress.say(f"config: {d.option}={d.asked} is {d.got} in the final .config ({d.kind}): {d.reason}")
        recorder.set_versions(busybox=img.busybox)

    def boot(self) -> None:
        assert self.prepared is not None
        opts, arch, recorder = self.opts, self.arch, self.recorder
        accel, argv = self.prepared.accel, self.prepared.argv
        recorder.set("accel", Accel(name=accel.name, reason=accel.reason))
        recorder.set("qemu_argv", argv)
        recorder.set("transport", transport_record(opts.transport, self.sessions))
        runner = self.runner = GuestRunner(
            session_factory(arch, opts.transport, argv, self.console_log, self.detector.feed, self.sessions),
            self.detector, self.progress, opts.case_timeout, opts.boot_timeout,
            arch.halt_command, case_logs_dir=recorder.dir / "caselogs")
        self.runners = [runner]
        recorder.stage_started("boot")
        self.progress.status(f"boot {arch.name} under {accel.name.upper()}")
        try:
            session = runner.boot()
            # The first command: a guest that dies or stalls right after READY did not boot.
            facts = session.run("busybox 2>&1 | head -n 1; cat /proc/version", 60).output
        except (GuestTimeout, GuestDied, TransportLost) as exc:
            tail = runner.session.tail(40) if runner.session else []
            why = boot_failure(exc, opts.boot_timeout)
            recorder.stage_finished("boot", "failed", error=why, console_tail=tail)
            raise OrchestratorError(
                f"The {arch.name} guest did not boot ({why}); the console tail is in "
                f"{recorder.dir / 'console.log'}: check the console= setting and kconfigs/{arch.name}.config.",
                ExitCode.BOOT_FAILED) from exc
        recorder.record.kernel.release = session.kernel_release
        recorder.set_versions(busybox_guest=facts[0] if facts else "unknown",
                              kernel_banner=facts[1] if len(facts) > 1 else "unknown")
        recorder.set("taint", Taint(boot=session.boot_taint))
        recorder.stage_finished("boot", seconds_to_shell=runner.boot_seconds[-1],
                                guest_uptime_at_shell=session.guest_boot_seconds)

    def _run_one(self, runner: GuestRunner, index: int, spec: CaseSpec) -> list:
        program_errors = self.prepared.image.program_errors if self.prepared else {}
        unbuilt = not_built(spec, program_errors)
        return [unbuilt] if unbuilt else runner.run_case(spec, index, len(self.cases), f"/tmp/kto/{index}")

    def _record(self, index: int, results: list, guest: str | None = None) -> None:
        out = self.board or self.progress
        for result in results:
            result.worker = guest
            self.recorder.add_case(result)
            if result.status != "PASS":
                out.say(f"  {result.status:<11} {result.id}  {result.reason[:90]}")
            else:   # a log shows each case as it ends; a terminal's status line did
                out.log(f"  [{index}/{len(self.cases)}] PASS {result.id} {fmt_duration(result.seconds)}"
                                  + (f" ({guest})" if guest else ""))

    def run_suites(self) -> None:
        assert self.runner is not None
        recorder, progress = self.recorder, self.progress
        recorder.stage_started("suites")
        if self.guests > 1:
            self._run_on_guests()
        else:
            runner = self.runner
            for index, spec in enumerate(self.cases, 1):
                results = self._run_one(runner, index, spec)
                self._record(index, results)
                failed = next((r for r in results if r.status in FAILING), None)
                if failed is not None and self.opts.shell_on_failure:
                    self.stopped_at = failed.id
                    progress.clear()
                    shell.hand_over(runner.session, failed.id, failed.status, index, len(self.cases),
                                    say=progress.say)
                    break
        progress.clear()
        runners = self.runners
        taint = None
        for r in runners:   # taint is a bit mask: any guest's flag counts
            if r.taint is not None:
                taint = (taint or 0) | r.taint
        if recorder.record.taint is not None:
            recorder.record.taint.end = taint
        recorder.set("transport", transport_record(self.opts.transport, self.sessions))
        recorder.stage_finished("suites", boots=sum(r.boots for r in runners),
                                restart_seconds=[s for r in runners for s in r.boot_seconds[1:]],
                                restart_guest_seconds=[s for r in runners for s in r.guest_boot_seconds[1:]])
        for r in runners:
            r.stop()
        splats = self._splats()
        if splats and self.prepared is not None:
            # While this run's vmlinux is the one in its build dir: a later build (a try of
            # the other side, a bisect step) replaces it.
            progress.status(f"decoding the frames of {len(splats)} splat(s)")
            view = build.tree_view(self.opts.cache_root, self.tree, self.prepared.build.build_dir)
            roots = [self.tree.path] + ([view.seen_tree] if view is not None else [])
            symbolize.decode_splats(splats, self.prepared.build.vmlinux, arch_of(self.opts), roots)
            progress.clear()
            self._decoded = {(s["console_line"], s["title"]): s.get("frames") for s in splats}
        recorder.set("splats", splats)
        recorder.set("first_cause", failures_after_poisoning_splat(recorder.record))

    def _run_on_guests(self) -> None:
        """The cases over self.guests guests (suites/pool.py): the first is the one boot()
        started; the others boot at their first case, each with its own console log."""
        assert self.runner is not None and self.prepared is not None
        board = self.board = pool.Board(self.progress, self.guests)
        self.runner.progress = pool.GuestProgress(board, 0)
        for k in range(2, self.guests + 1):
            log = open(self.recorder.dir / pool.console_name(k), "wb")
            self.extra_logs.append(log)
            detector = SplatDetector()
            self.detectors.append(detector)
            self.runners.append(GuestRunner(
                session_factory(self.arch, self.opts.transport, self.prepared.argv, log, detector.feed,
                                self.sessions),
                detector, pool.GuestProgress(board, k - 1), self.opts.case_timeout, self.opts.boot_timeout,
                self.arch.halt_command, case_logs_dir=self.recorder.dir / "caselogs"))
        names = {id(r): f"g{k}" for k, r in enumerate(self.runners, 1)}
        rank = {spec.id: i for i, spec in enumerate(self.cases)}
        self.recorder.set("guests", {"count": self.guests, "why": self.guests_why})

        def record(runner: GuestRunner, job: pool.Job, results: list) -> None:
            self._record(job.index, results, names[id(runner)])
            # results.json in the suites' order, whichever guest finished first
            self.recorder.cases.sort(key=lambda c: rank.get(test_of(c.id), len(rank)))

        pool.run_pool(self.runners, [pool.Job(i, spec) for i, spec in enumerate(self.cases, 1)],
                      lambda runner, job: self._run_one(runner, job.index, job.spec), record)
        self.recorder.set("guests", {"count": self.guests, "why": self.guests_why, "per_guest": [
            {"guest": names[id(r)], "cases": sum(1 for c in self.recorder.cases if c.worker == names[id(r)]),
             "boots": r.boots, "console_log": pool.console_name(k)}
            for k, r in enumerate(self.runners, 1)]})

    def _splats(self) -> list[dict]:
        """Every guest's splats (their decoded frames, once run_suites decoded them)."""
        for d in self.detectors:
            d.flush()
        out = [s.as_dict() for d in self.detectors for s in d.splats]
        for s in out:
            frames = self._decoded.get((s["console_line"], s["title"]))
            if frames:
                s["frames"] = frames
        return out

    def finish(self) -> int:
        digest = inputs_digest(self.opts)   # hashes images/ and the .tc cases: once
        self.recorder.set("history", history.record(
            history.path_for(self.opts.cache_root, self.tree.tree_id, digest), self.recorder.record))
        if self.opts.baseline is not None:
            baseline.compare_with(self.recorder, self.opts.baseline, self.progress, self.tries)
        verdict, code = verdict_of(self.recorder.cases, len(self.recorder.record.splats))
        if self.stopped_at is not None:
            self.recorder.finish("incomplete", f"stopped at {self.stopped_at} for a shell (--shell-on-failure): "
                                 f"{verdict}", int(code))
            return int(code)
        self.recorder.finish("complete", verdict, int(code))
        if self.ctx.only_cases is None and self.ctx.series is None:
            # Every case of this tree with these inputs: what a series on this tree as its
            # base compares with, without running the base again.
            cache.atomic_write_json(base_pointer(self.opts, self.tree.tree_id, digest),
                                    {"results_dir": str(self.recorder.dir)})
        return int(code)

    def tries(self, case_ids: list[str]) -> list[RunRecord]:
        """These cases again on this run's kernel, each try in a fresh guest of its own run
        (results/<run>-tryN), for confirming a difference from the baseline."""
        runs = []
        for k in range(1, self.opts.retries + 1):
            try:
                _, run = run_test(dataclasses.replace(self.opts, baseline=None), self.progress, RunContext(
                    tree=self.tree, label=f"{self.ctx.label or 'run'}-try{k}", series=self.ctx.series,
                    only_cases=frozenset(case_ids), quiet=True))
            except OrchestratorError as exc:
                if exc.results is None:
                    raise
                run = exc.results   # a try whose guest did not boot counts with no cases
            runs.append(run)
        point_latest(self.opts.results_root, self.recorder.record.run_id)
        return runs

    def close(self) -> None:
        """No QEMU left, and what was measured on disk, whichever way the run ended."""
        recorder = self.recorder
        for runner in self.runners:
            runner.kill()
        # Splats seen before a failure or an interrupt are results too. On a full disk
        # each of these writes may fail: the error already on its way is the one to tell.
        splats = self._splats()
        try:
            if len(recorder.record.splats) != len(splats):
                recorder.set("splats", splats)
        except OrchestratorError:
            pass
        try:
            for log in (self.console_log, *self.extra_logs):
                log.close()
            pool.join_console_logs(recorder.dir, len(self.extra_logs) + 1)
        except OSError:
            pass
        report.write_run_reports(recorder)
        self.progress.clear()
        if self.ctx.quiet:
            self.progress.say(f"  {self.ctx.label}: {counts_line(recorder.record)}")
        else:
            print(summary.render(recorder.record, str(recorder.dir)))
