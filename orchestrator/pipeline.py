"""The `test` job for one arch as its steps: open the run (inputs checked, results dir
opened), prepare (config, build, image), boot, run the suites, finish; close whatever
happened. Each step is a function that takes the open run and what the step before it
returned, and returns what the next one needs; the recorder is the one writer of the
record. What the steps are made of, and what other front doors share with them, is in
run_inputs.py (what a run is asked) and guest_setup.py (a guest for an arch)."""
from __future__ import annotations

import concurrent.futures
import dataclasses
import pathlib
import signal
import threading
from typing import BinaryIO

import msgspec

from . import cache, shell
from .arches import Arch
from .errors import ExitCode, OrchestratorError
from .guest_setup import (AtShell, PreparedGuest, boot_failure, build_only, first_boot, guest_runner,
                          one_build_at_a_time, prepare_guest, recorded_in, run_case, transport_record)
from .kernel import build, buildwarn, source, symbolize
from .kernel.fragments import Fragments
from .kernel.kconfig import check_user_fragments
from .model import Accel, CaseResult, Frame, RunRecord, Splat, Taint
from .progress import Progress, fmt_duration
from .results import reproduce, baseline, history, report, summary
from .results.recorder import Recorder, failures_after_poisoning_splat, new_run_id, point_latest
from .run_inputs import (RunContext, TestOptions, arch_of, base_pointer, check_inputs, inputs_digest, run_meta,
                         source_tree)
from .suites import order, pool
from .suites.case_id import test_of
from .suites.runner import CaseSpec, GuestRunner, list_cases, select_cases
from .suites.splats import SplatDetector
from .suites.status import FAILING, counts_line
from .vm.transport import GuestDied, GuestTimeout, Transport, TransportLost

# What the other front doors take from here (cli, matrix, rerun, series/versus_base.py,
# the plugin's merge); the inputs' names are run_inputs.py's, build_only guest_setup.py's.
__all__ = ["RunContext", "TestOptions", "base_pointer", "build_only", "inputs_digest", "internal_error",
           "prepare_guest", "run_test", "source_tree", "verdict_of"]


# The arches of one series run side by side (series/lanes.py), one kernel build at a time
# (guest_setup.one_build_at_a_time): while one arch builds, the guests of an arch already
# built run. Two arches' guests at once would only share the same two cores, each case
# slower and nearer its timeout; so one arch's guests at a time, in this process.
GUESTS_OF_ONE_ARCH_AT_A_TIME = threading.Lock()


def run_test(opts: TestOptions, progress: Progress,
             ctx: RunContext | None = None) -> tuple[int, RunRecord]:
    """Exit code and the run's record. A failing stage raises OrchestratorError with the
    record so far as `.results` (for the matrix table)."""
    run = open_run(opts, progress, ctx or RunContext())
    recorder = run.recorder
    error: OrchestratorError | None = None   # gets the results once close() has recorded all
    try:
        prepared = prepare(run)
        with GUESTS_OF_ONE_ARCH_AT_A_TIME:
            booted = boot(run, prepared)
            ran = run_suites(run, prepared, booted)
        code = finish(run, ran)
    except OrchestratorError as exc:
        _finish_if_possible(recorder, "failed", exc.message, int(exc.code))
        error = exc
        raise
    except OSError as exc:
        # The results disk filled up (or went away) under console.log or a case's record.
        error = cache.disk_error(pathlib.Path(exc.filename or recorder.dir), exc)
        _finish_if_possible(recorder, "failed", error.message, int(error.code))
        raise error from exc
    except Exception as exc:
        # A bug of ours (or of a library): the run's state says so, with the exception, and
        # every result already measured stays; the user sees one line and exit 7.
        error = OrchestratorError(internal_error(exc), ExitCode.INFRA_ERROR)
        _finish_if_possible(recorder, "error", error.message, int(error.code))
        raise error from exc
    except BaseException:
        # A second Ctrl-C (or a signal forwarded by a wrapper such as timeout(1)) must not
        # cut the write of what was measured: the process is on its way out anyway.
        if threading.current_thread() is threading.main_thread():   # the only one signals reach
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
        _finish_if_possible(recorder, "incomplete",
                            "interrupted before the end; the cases listed are all that ran",
                            int(ExitCode.INTERRUPTED))
        raise
    finally:
        close(run)
        if error is not None:
            error.results = recorder.record
    # After close(): a splat it caught late is part of the record.
    return code, recorder.record


# -- what the steps pass on ---------------------------------------------------------
@dataclasses.dataclass
class Guests:
    """The run's guests as they start, so close() ends each whichever way the run ended:
    their console logs (console.log first), splat detectors and runners, the sessions
    they opened (the transport record counts their connects), and the frames of their
    splats once the suites step decoded them."""
    logs: list[BinaryIO]
    detectors: list[SplatDetector] = dataclasses.field(default_factory=list)
    runners: list[GuestRunner] = dataclasses.field(default_factory=list)
    sessions: list[Transport] = dataclasses.field(default_factory=list)
    decoded: dict[tuple[int, str], list[Frame] | None] = dataclasses.field(default_factory=dict)

    def start(self, opts: TestOptions, prepared: PreparedGuest, log: BinaryIO, progress: Progress,
              case_logs_dir: pathlib.Path) -> GuestRunner:
        """One more guest's runner (it boots at its first case, or in the boot step)."""
        detector = SplatDetector()
        self.detectors.append(detector)
        runner = guest_runner(opts, prepared, log, detector, self.sessions, progress, case_logs_dir)
        self.runners.append(runner)
        return runner

    def splats(self) -> list[Splat]:
        """Every guest's splats (with their decoded frames, once run_suites decoded them):
        copies, as a detector may still fold a repeat into its own."""
        for d in self.detectors:
            d.flush()
        out = [s.copy() for d in self.detectors for s in d.splats]
        for s in out:
            frames = self.decoded.get((s.console_line, s.title))
            if frames:
                s.frames = frames
        return out


@dataclasses.dataclass(frozen=True)
class OpenRun:
    """A run whose inputs were checked and whose results dir is open: what every step
    reads, as kunit_tool's steps read their request."""
    opts: TestOptions
    ctx: RunContext
    progress: Progress
    arch: Arch
    fragments: Fragments
    tree: source.KernelTree
    cases: list[CaseSpec]
    guests: int               # how many guests share the cases
    guests_why: str
    recorder: Recorder
    started: Guests           # filled as guests start


@dataclasses.dataclass(frozen=True)
class Booted:
    """The first guest at its shell, and what it said of itself."""
    runner: GuestRunner
    at_shell: AtShell
    busybox: str              # busybox's banner in the guest
    banner: str               # /proc/version


@dataclasses.dataclass(frozen=True)
class SuitesRun:
    stopped_at: str | None    # the case a --shell-on-failure stopped at


# -- the steps ------------------------------------------------------------------------
def open_run(opts: TestOptions, progress: Progress, ctx: RunContext) -> OpenRun:
    """Bad input refused, the tree fetched and its cases listed, results/<run>/ opened
    with console.log; no case to run is refused here, before any build."""
    arch = arch_of(opts)
    fragments = check_inputs(opts, arch)
    tree = ctx.tree or source_tree(opts, progress)
    check_user_fragments(fragments.user, tree.path, arch.srcarch)
    cases = list_cases(tree.path, opts.suites, arch.syscall_prefix, opts.tcscripts)
    if opts.cases:
        cases = select_cases(cases, opts.cases, opts.suites)
    if ctx.only_cases is not None:
        # A case's spec is its file: "x.tc (instance)" asks for x.tc, which runs both.
        wanted = {test_of(case_id) for case_id in ctx.only_cases}
        cases = [c for c in cases if c.id in wanted]
    guests, guests_why = guest_count(opts, arch, len(cases))
    run_id = new_run_id(arch.name) + (f"-{ctx.label}" if ctx.label else "")
    recorder = Recorder(opts.results_root, run_id, run_meta(opts, arch, tree, fragments, ctx.label, ctx.series))
    if not cases and ctx.only_cases is None:
        # A run that tested nothing is no pass: an empty --tcdir, a suite dir with no
        # case. Said before any build, and recorded as incomplete.
        message = (f"No case to run: the suites {', '.join(opts.suites)} hold no case in "
                   f"{tree.path} (tcscripts: {opts.tcscripts}); give --suite a suite that has "
                   "cases, or --tcdir a directory holding .tc files.")
        recorder.finish("incomplete", message, int(ExitCode.NO_CASES))
        raise OrchestratorError(message, ExitCode.NO_CASES)
    progress.say(f"{arch.name}: Linux {tree.version} from {tree.origin}; {len(cases)} cases"
                 + (f" on {guests} guests" if guests > 1 else "") + f"; results in {recorder.dir}")
    console_log = open(recorder.dir / "console.log", "wb")
    return OpenRun(opts, ctx, progress, arch, fragments, tree, cases, guests, guests_why, recorder,
                   Guests([console_log]))


def guest_count(opts: TestOptions, arch: Arch, cases: int) -> tuple[int, str]:
    """How many guests share the run's cases, and why that many."""
    if opts.shell_on_failure:
        return 1, "--shell-on-failure hands one guest's console to the terminal"
    if opts.guests is not None:
        return max(1, min(opts.guests, cases)), f"--guests {opts.guests}"
    return pool.default_guests(arch.qemu.memory, cases)


def prepare(run: OpenRun) -> PreparedGuest:
    """Config, build, image (under the cache's lock), each recorded as it happens."""
    recorder, progress = run.recorder, run.progress
    prepared = prepare_guest(run.opts, run.tree, progress, run.fragments, recorded_in(recorder), run.guests)
    if run.ctx.warning_files:
        progress.status(f"compiler warnings (W={buildwarn.LEVEL}) of the .c files the series touches")
        with one_build_at_a_time(run.opts, progress):   # a compile too
            warnings = buildwarn.warnings_for(prepared.build.build_dir, run.arch, run.opts.cache_root,
                                              run.ctx.warning_files)
        recorder.set("build_warnings", warnings)
        recorder.set("build_warnings_level", buildwarn.LEVEL)
    for d in prepared.build.dropped:
        progress.say(f"config: {d.option}={d.asked} is {d.got} in the final .config ({d.kind}): {d.reason}")
    recorder.set_versions(busybox=prepared.image.busybox)
    return prepared


def boot(run: OpenRun, prepared: PreparedGuest) -> Booted:
    """The first guest up to its shell, and its first command; a guest that reaches no
    shell fails the run (exit BOOT_FAILED) with the console tail."""
    opts, arch, recorder = run.opts, prepared.arch, run.recorder
    accel = prepared.accel
    recorder.set("accel", Accel(name=accel.name, reason=accel.reason))
    recorder.set("qemu_argv", prepared.argv)
    recorder.set("transport", transport_record(opts.transport, run.started.sessions))
    runner = run.started.start(opts, prepared, run.started.logs[0], run.progress, recorder.dir / "caselogs")
    recorder.stage_started("boot")
    run.progress.status(f"boot {arch.name} under {accel.name.upper()}")
    try:
        at_shell = first_boot(runner)
        # The first command: a guest that dies or stalls right after READY did not boot.
        facts = at_shell.session.run("busybox 2>&1 | head -n 1; cat /proc/version", 60).output
    except (GuestTimeout, GuestDied, TransportLost) as exc:
        tail = runner.session.tail(40) if runner.session else []
        why = boot_failure(exc, opts.boot_timeout)
        recorder.stage_finished("boot", "failed", error=why, console_tail=tail)
        raise OrchestratorError(
            f"The {arch.name} guest did not boot ({why}); the console tail is in "
            f"{recorder.dir / 'console.log'}: check the console= setting and kconfigs/{arch.name}.config.",
            ExitCode.BOOT_FAILED) from exc
    booted = Booted(runner, at_shell, facts[0] if facts else "unknown", facts[1] if len(facts) > 1 else "unknown")
    recorder.set("kernel", msgspec.structs.replace(recorder.record.kernel, release=at_shell.release))
    recorder.set_versions(busybox_guest=booted.busybox, kernel_banner=booted.banner)
    recorder.set("taint", Taint(boot=at_shell.taint))
    recorder.stage_finished("boot", seconds_to_shell=at_shell.seconds_to_shell,
                            guest_uptime_at_shell=at_shell.uptime_at_shell)
    return booted


def run_suites(run: OpenRun, prepared: PreparedGuest, booted: Booted) -> SuitesRun:
    """Every case, on the booted guest or shared over run.guests guests; then the end
    taint, each guest stopped, the splats decoded against this run's vmlinux."""
    opts, recorder, progress, started = run.opts, run.recorder, run.progress, run.started
    recorder.stage_started("suites")
    stopped_at = None
    if run.guests > 1:
        _run_on_guests(run, prepared, booted.runner)
    else:
        runner = booted.runner
        for index, spec in enumerate(run.cases, 1):
            results = run_case(runner, spec, index, len(run.cases), prepared.image.program_errors)
            _record_results(run, progress, index, results)
            failed = next((r for r in results if r.status in FAILING), None)
            if failed is not None and opts.shell_on_failure:
                stopped_at = failed.id
                progress.clear()
                shell.hand_over(runner.session, failed.id, failed.status, index, len(run.cases),
                                say=progress.say)
                break
    runners = started.runners
    # The debug kernel's leak scan, each guest at once (its own QEMU, its own thread).
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(runners)) as scans:
        leak_scans = [scan for scan in scans.map(GuestRunner.scan_for_leaks, runners) if scan is not None]
    progress.clear()
    taint = None
    for r in runners:   # taint is a bit mask: any guest's flag counts
        if r.taint is not None:
            taint = (taint or 0) | r.taint
    if recorder.record.taint is not None:
        recorder.set("taint", msgspec.structs.replace(recorder.record.taint, end=taint))
    recorder.set("transport", transport_record(opts.transport, started.sessions))
    recorder.stage_finished("suites", boots=sum(r.boots for r in runners),
                            leak_scan_seconds=[scan.seconds for scan in leak_scans] or None,
                            leak_scan_errors=[scan.error for scan in leak_scans if scan.error] or None,
                            restart_seconds=[s for r in runners for s in r.boot_seconds[1:]],
                            restart_guest_seconds=[s for r in runners for s in r.guest_boot_seconds[1:]])
    for r in runners:
        r.stop()
    splats = started.splats()
    if splats:
        # While this run's vmlinux is the one in its build dir: a later build (a try of
        # the other side, a bisect step) replaces it.
        progress.status(f"decoding the frames of {len(splats)} splat(s)")
        view = build.tree_view(opts.cache_root, run.tree, prepared.build.build_dir)
        roots = list(dict.fromkeys([run.tree.path, prepared.source])) + ([view.seen_tree] if view is not None else [])
        symbolize.decode_splats(splats, prepared.build.vmlinux, prepared.arch, roots)
        progress.clear()
        started.decoded = {(s.console_line, s.title): s.frames for s in splats}
    recorder.set("splats", splats)
    recorder.set("first_cause", failures_after_poisoning_splat(recorder.record))
    return SuitesRun(stopped_at)


def _record_results(run: OpenRun, out: Progress | pool.Board, index: int, results: list[CaseResult],
                    guest: str | None = None) -> None:
    """A case's results into the record as it ends, and a line for it on `out`."""
    for result in results:
        result.worker = guest
        run.recorder.add_case(result)
        if result.status != "PASS":
            out.say(f"  {result.status:<11} {result.id}  {result.reason[:90]}")
        else:   # a log shows each case as it ends; a terminal's status line did
            out.log(f"  [{index}/{len(run.cases)}] PASS {result.id} {fmt_duration(result.seconds)}"
                    + (f" ({guest})" if guest else ""))


def _run_on_guests(run: OpenRun, prepared: PreparedGuest, first: GuestRunner) -> None:
    """The cases over run.guests guests (suites/pool.py): the first is the one boot()
    started; the others boot at their first case, each with its own console log."""
    opts, recorder, started = run.opts, run.recorder, run.started
    board = pool.Board(run.progress, run.guests)
    first.progress = pool.GuestProgress(board, 0)
    for k in range(2, run.guests + 1):
        log = open(recorder.dir / pool.console_name(k), "wb")
        started.logs.append(log)
        started.start(opts, prepared, log, pool.GuestProgress(board, k - 1), recorder.dir / "caselogs")
    runners = started.runners
    names = {id(r): f"g{k}" for k, r in enumerate(runners, 1)}
    rank = {spec.id: i for i, spec in enumerate(run.cases)}
    jobs = [pool.Job(i, spec) for i, spec in enumerate(run.cases, 1)]
    times = order.recorded(order.path_for(opts.cache_root, prepared.arch.name, prepared.accel.name))
    jobs = [jobs[i] for i in order.longest_first([spec.id for spec in run.cases], times)]
    known = sum(1 for spec in run.cases if spec.id in times)
    taken_in = (f"longest first, by the times of {known} of {len(run.cases)} cases in earlier runs "
                f"on {prepared.arch.name} under {prepared.accel.name.upper()}" if known else
                "file order (no times recorded yet for this arch and accelerator)")
    recorder.set("guests", {"count": run.guests, "why": run.guests_why, "order": taken_in})

    def record(runner: GuestRunner, job: pool.Job, results: list[CaseResult]) -> None:
        _record_results(run, board, job.index, results, names[id(runner)])
        # results.json in the suites' order, whichever guest finished first
        recorder.set("cases", sorted(recorder.cases, key=lambda c: rank.get(test_of(c.id), len(rank))))

    pool.run_pool(runners, jobs,
                  lambda runner, job: run_case(runner, job.spec, job.index, len(run.cases),
                                               prepared.image.program_errors), record)
    recorder.set("guests", {"count": run.guests, "why": run.guests_why, "order": taken_in, "per_guest": [
        {"guest": names[id(r)], "cases": sum(1 for c in recorder.cases if c.worker == names[id(r)]),
         "boots": r.boots, "console_log": pool.console_name(k)}
        for k, r in enumerate(runners, 1)]})


def finish(run: OpenRun, ran: SuitesRun) -> int:
    """The history of each case, the comparison with --baseline, the verdict; a complete
    run of every case becomes the base a series on this tree compares with."""
    opts, recorder = run.opts, run.recorder
    digest = inputs_digest(opts)   # hashes images/ and the .tc cases: once
    recorder.set("history", history.record(
        history.path_for(opts.cache_root, run.tree.tree_id, digest), recorder.record))
    if recorder.record.accel is not None:
        order.remember(order.path_for(opts.cache_root, recorder.record.arch, recorder.record.accel.name),
                       recorder.cases)
    if opts.baseline is not None:
        baseline.compare_with(recorder, opts.baseline, run.progress, lambda case_ids: tries(run, case_ids))
    verdict, code = verdict_of(recorder.cases, len(recorder.record.splats))
    if ran.stopped_at is not None:
        recorder.finish("incomplete", f"stopped at {ran.stopped_at} for a shell (--shell-on-failure): "
                        f"{verdict}", int(code))
        return int(code)
    recorder.finish("complete", verdict, int(code))
    if run.ctx.only_cases is None and run.ctx.series is None:
        # Every case of this tree with these inputs: what a series on this tree as its
        # base compares with, without running the base again.
        cache.atomic_write_json(base_pointer(opts, run.tree.tree_id, digest), {"results_dir": str(recorder.dir)})
    return int(code)


def tries(run: OpenRun, case_ids: list[str]) -> list[RunRecord]:
    """These cases again on this run's kernel, each try in a fresh guest of its own run
    (results/<run>-tryN), for confirming a difference from the baseline."""
    opts, ctx = run.opts, run.ctx
    runs = []
    for k in range(1, opts.retries + 1):
        try:
            _, record = run_test(dataclasses.replace(opts, baseline=None), run.progress, RunContext(
                tree=run.tree, label=f"{ctx.label or 'run'}-try{k}", series=ctx.series,
                only_cases=frozenset(case_ids), quiet=True))
        except OrchestratorError as exc:
            if exc.results is None:
                raise
            record = exc.results   # a try whose guest did not boot counts with no cases
        runs.append(record)
    point_latest(opts.results_root, run.recorder.record.run_id)
    return runs


def close(run: OpenRun) -> None:
    """No QEMU left, and what was measured on disk, whichever way the run ended."""
    recorder, started, progress = run.recorder, run.started, run.progress
    for runner in started.runners:
        runner.kill()
    # Splats seen before a failure or an interrupt are results too. On a full disk
    # each of these writes may fail: the error already on its way is the one to tell.
    splats = started.splats()
    try:
        if len(recorder.record.splats) != len(splats):
            recorder.set("splats", splats)
    except OrchestratorError:
        pass
    try:
        for log in started.logs:
            log.close()
        pool.join_console_logs(recorder.dir, len(started.logs))
    except OSError:
        pass
    report.write_run_reports(recorder)
    try:
        reproduce.write(recorder.dir, recorder.record, run.cases, run.arch.halt_command)
    except OSError:
        pass   # a full disk: the error already on its way is the one to tell
    progress.clear()
    if run.ctx.quiet:
        progress.say(f"  {run.ctx.label}: {counts_line(recorder.record)}")
    else:
        print(summary.render(recorder.record, str(recorder.dir)))


# -- how a run ends ---------------------------------------------------------------------
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


def internal_error(exc: BaseException) -> str:
    """The one line for an exception that is not an OrchestratorError: a bug."""
    import traceback
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" at {pathlib.Path(where.filename).name}:{where.lineno}" if where else ""
    return (f"internal error: {type(exc).__name__}: {str(exc)[:200]}{at}; this is a bug of the "
            "orchestrator: the results measured so far are kept; please report it with results.json")
