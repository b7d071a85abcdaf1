"""pytest plugin (entry point `pytest11`): the cases of the suites as pytest items.

    pytest -n 2 --arch x86_64                      every default-suite case, two guests
    pytest -n 4 --arch arm64,riscv64 --suite dynevent,kprobe --vms-per-arch 2
    pytest --arch x86_64 --transport ssh --junitxml=junit.xml -k fprobe

Inert without --arch. Each case of each suite (each ftracetest .tc, each tcscripts
case, each kprobe_multi case) is one item per arch, `arm64::dynevent/add_remove_fprobe.tc`.
Statuses: PASS -> passed; FAIL, UNRESOLVED, ERROR -> failed; UNSUPPORTED, UNTESTED,
SKIP -> skipped with the reason; XFAIL -> xfailed.

The process pytest starts (the xdist controller, or the only process) fetches the tree,
applies a series, builds each arch's kernel and image once (with its progress on the
terminal) and opens one results/<run-id>/ per arch; every process that runs items boots
its own guest per arch (parts.py); at the end the controller merges what they measured
into the run's results.json, junit.xml, report.html and summary.txt.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import sys
import time
from typing import Any

import pytest

from ..errors import OrchestratorError
from ..kernel.trees import DEFAULT_TREE
from ..project import ACCELS, BOOT_TIMEOUT_SECONDS, CASE_TIMEOUT_SECONDS, RESULTS_DIR, TRANSPORTS, seconds_option
from ..vm.emulators import DEFAULT_EMULATOR, EMULATORS


def pytest_addoption(parser: pytest.Parser) -> None:
    from ..suites.runner import DEFAULT_SUITES
    g = parser.getgroup("orchestrator", "kernel test cases in QEMU guests (orchestrator)")
    g.addoption("--arch", dest="orchestrator_arch", default=None, metavar="ARCH[,ARCH]",
                help="run the suites' cases as items on these arches (from the arch table, or 'all'); "
                     "without it the plugin does nothing")
    g.addoption("--kernel", dest="orchestrator_kernel", default=None,
                help=f"kernel tree: 6.12 or 7.2 (Debian's, built in) or a path (default {DEFAULT_TREE})")
    g.addoption("--series", dest="orchestrator_series", default=None, metavar="MBOX|DIR|BASE..TIP|BRANCH",
                help="patch series applied on a worktree of the tree first")
    g.addoption("--series-base", dest="orchestrator_base", default=None, metavar="REV",
                help="the commit the series goes on (default: the tree's HEAD, or the range's base)")
    g.addoption("--suite", dest="orchestrator_suite", action="append", default=None, metavar="NAME[,NAME]",
                help=f"suites (default {','.join(DEFAULT_SUITES)})")
    g.addoption("--case", dest="orchestrator_case", action="append", default=None, metavar="GLOB[,GLOB]",
                help="only the cases whose id or file name matches a shell glob (CASES=)")
    g.addoption("--kconfig", dest="orchestrator_kconfig", action="append", default=None, metavar="FRAGMENT",
                help="extra kconfig fragment (path, or a name in kconfigs/)")
    g.addoption("--tcdir", dest="orchestrator_tcdir", default=None, metavar="DIR",
                help="the .tc cases of DIR as the tcscripts suite, instead of the project's tcscripts/")
    g.addoption("--transport", dest="orchestrator_transport", choices=TRANSPORTS, default="serial",
                help="how commands reach each guest: serial console (default) or SSH")
    g.addoption("--vms-per-arch", dest="orchestrator_vms_per_arch", type=int, default=None, metavar="K",
                help="with -n: split each arch's cases into K groups (ids ending in @ARCH-vmN) "
                     "that xdist's --dist loadgroup keeps on one worker each, so at most K guests "
                     "of an arch boot; default: each "
                     "worker boots a guest for every arch it gets cases of")
    g.addoption("--orchestrator-results-dir", dest="orchestrator_results_dir", default=str(RESULTS_DIR),
                help="where results/<run-id>/ go (default: the project's results/)")
    g.addoption("--orchestrator-cache-dir", dest="orchestrator_cache_dir", default=None,
                help="default $ORCHESTRATOR_CACHE or ~/.cache/orchestrator")
    g.addoption("--case-timeout", dest="orchestrator_case_timeout", type=seconds_option, default=CASE_TIMEOUT_SECONDS,
                help=f"seconds one case may take before it is ERROR (default {CASE_TIMEOUT_SECONDS:g})")
    g.addoption("--boot-timeout", dest="orchestrator_boot_timeout", type=seconds_option, default=BOOT_TIMEOUT_SECONDS,
                help=f"seconds from QEMU start to the guest shell (default {BOOT_TIMEOUT_SECONDS:g})")
    g.addoption("--accel", dest="orchestrator_accel", choices=ACCELS, default="auto")
    g.addoption("--llvm", dest="orchestrator_llvm", default=None, metavar="1|-19",
                help="build with clang/LLVM (kbuild's LLVM=) instead of the table's toolchain (LLVM=)")
    g.addoption("--cross-compile", dest="orchestrator_cross_compile", default=None, metavar="PREFIX",
                help="another CROSS_COMPILE prefix than the table's (CROSS_COMPILE=)")
    g.addoption("--qemu", dest="orchestrator_qemu", choices=list(EMULATORS), default=None,
                help="the QEMU build the guests run on: " + ", ".join(f"{e.name} ({e.version})" for e in EMULATORS.values())
                     + f"; default: each arch's own (the arch table's default_qemu, else {DEFAULT_EMULATOR})")


class PluginSession:
    """This process's view of the session: options, tree, per-arch cases and run dirs,
    and (in processes that run items) its guests."""

    def __init__(self, config: pytest.Config):
        from ..cache import default_cache_root
        from ..cli.main import split_list
        from ..run_inputs import TestOptions
        opt = config.option
        self.config = config
        self.worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.is_controller = not hasattr(config, "workerinput")
        self.opts = TestOptions(
            arch=opt.orchestrator_arch, kernel=opt.orchestrator_kernel, suites=split_list(opt.orchestrator_suite),
            extra_kconfigs=split_list(opt.orchestrator_kconfig),
            results_root=pathlib.Path(opt.orchestrator_results_dir).resolve(),
            cache_root=pathlib.Path(opt.orchestrator_cache_dir).resolve() if opt.orchestrator_cache_dir else default_cache_root(),
            case_timeout=opt.orchestrator_case_timeout, boot_timeout=opt.orchestrator_boot_timeout, accel=opt.orchestrator_accel,
            transport=opt.orchestrator_transport, qemu=opt.orchestrator_qemu,
            llvm=opt.orchestrator_llvm, cross_compile=opt.orchestrator_cross_compile,
            cases=tuple(split_list(opt.orchestrator_case)))
        if opt.orchestrator_tcdir:
            tcdir = pathlib.Path(opt.orchestrator_tcdir).resolve()
            if not tcdir.is_dir():
                raise pytest.UsageError(f"--tcdir {opt.orchestrator_tcdir} is not a directory; give the "
                                        "directory that holds the .tc cases.")
            self.opts.tcscripts = tcdir
        self.vms_per_arch = opt.orchestrator_vms_per_arch
        self.cases: dict[str, list] = {}       # arch -> its CaseSpecs, in the suites' order
        self.runs: dict[str, str] = {}         # arch -> its results/<run-id>/
        self.tree: Any = None
        self.recorders: dict[str, Any] = {}
        self.guests: dict[str, Any] = {}
        self.parts: dict[str, Any] = {}        # arch -> this process's PartWriter
        self.failed_arches: dict[str, str] = {}
        self.summaries: list[str] = []
        self._stack = contextlib.ExitStack()
        self.items_started = time.monotonic()   # reset when pytest starts running items

    # -- the controller: tree, series, builds, run dirs --------------------
    def start(self) -> None:
        from .. import arches as arches_mod
        from ..series import patches as series_mod
        from ..guest_setup import prepare_guest, recorded_in
        from ..run_inputs import arch_of, check_inputs, run_meta, source_tree
        from ..progress import Progress
        from ..results.recorder import Recorder, new_run_id
        progress = Progress()
        collect_only = self.config.option.collectonly
        selected = [arch_of(dataclasses.replace(self.opts, arch=a.name)) for a in arches_mod.select(self.opts.arch)]
        fragments = {arch.name: check_inputs(dataclasses.replace(self.opts, arch=arch.name), arch,
                                             host_tools=not collect_only)
                     for arch in selected}
        if self.config.option.orchestrator_series:
            series_mod.check_spec(self.config.option.orchestrator_series)   # before the tree is fetched
        tree = source_tree(self.opts, progress)
        series_info = None
        if self.config.option.orchestrator_series:
            ser, base = series_mod.load_for_tree(self.config.option.orchestrator_series, tree, self.config.option.orchestrator_base)
            # Held to the end of the session: no other run checks out another commit under it.
            # Every arch of the session builds from this one checkout, one after another.
            lane = selected[0].name
            self._stack.enter_context(series_mod.worktree_lock(tree, self.opts.cache_root, lane, progress.say))
            applied = series_mod.apply(tree, ser, base, self.opts.cache_root, lane, progress.say)
            progress.say(f"series: {ser.title}: {len(ser.patches)} patch(es) applied, tip {applied.tip_commit[:12]}")
            series_info = applied.info()
            tree = series_mod.worktree_tree(applied.worktree, f"{tree.origin} + series")
        self.tree = tree
        self._list_cases([arch.name for arch in selected])   # an unknown suite: before any build
        if collect_only:   # the cases only: no results dir, no build
            return
        for arch in selected:
            opts = dataclasses.replace(self.opts, arch=arch.name)
            recorder = Recorder(opts.results_root, new_run_id(arch.name) + "-pytest",
                                run_meta(opts, arch, tree, fragments[arch.name], "pytest", series_info))
            recorder.set("transport", {"name": opts.transport})
            self.recorders[arch.name] = recorder
            progress.say(f"{arch.name}: Linux {tree.version} from {tree.origin}; results in {recorder.dir}")
            try:
                prepared = prepare_guest(opts, tree, progress, on_stage=recorded_in(recorder))
            except OrchestratorError as exc:
                # Its items fail with this sentence; the other arches still run.
                self.failed_arches[arch.name] = exc.message
                recorder.finish("failed", exc.message, int(exc.code))
                progress.say(f"{arch.name}: {exc.message}")
                continue
            finally:
                progress.clear()
            recorder.set_versions(busybox=prepared.image.busybox)
            recorder.set("qemu_argv", prepared.argv)
        self.runs = {name: str(r.dir) for name, r in self.recorders.items()}

    def adopt(self, workerinput: dict) -> None:
        """A worker takes the controller's tree, run dirs and arch failures."""
        from ..kernel.source import KernelTree
        tree = dict(workerinput["orchestrator_tree"])
        self.tree = KernelTree(**{**tree, "path": pathlib.Path(tree["path"])})
        self.runs = dict(workerinput["orchestrator_runs"])
        self.failed_arches = dict(workerinput["orchestrator_failed"])
        self._list_cases(list(self.runs))

    def _list_cases(self, names: list[str]) -> None:
        from ..arches import get_arch
        from ..suites.runner import list_cases, select_cases
        for name in names:
            cases = list_cases(self.tree.path, self.opts.suites, get_arch(name).syscall_prefix, self.opts.tcscripts)
            self.cases[name] = select_cases(cases, self.opts.cases, self.opts.suites) if self.opts.cases else cases

    def source_of(self, spec) -> pathlib.Path:
        """The file a case comes from: its .tc, or the guest program's C source."""
        from ..guest.guestprog import PROGRAM_SOURCES
        from ..guest.image import FTRACE_SELFTESTS
        if spec.is_program:
            return PROGRAM_SOURCES[spec.suite]
        if spec.suite == "tcscripts":
            return self.opts.tcscripts / spec.id.split("/", 1)[1]
        return self.tree.path / FTRACE_SELFTESTS / "test.d" / spec.id

    def workerinput(self) -> dict:
        return {"orchestrator_tree": {**dataclasses.asdict(self.tree), "path": str(self.tree.path)},
                "orchestrator_runs": self.runs, "orchestrator_failed": self.failed_arches}

    # -- every process that runs items ------------------------------------
    def guest(self, arch_name: str):
        """This process's guest for the arch, booted on first use."""
        from ..vm.transport import GuestDied, GuestTimeout, TransportLost
        from ..guest_setup import boot_failure
        from ..progress import Progress
        from .parts import ArchGuest, BootFailedLine, PartWriter
        if arch_name in self.failed_arches:
            raise ArchUnavailable(self.failed_arches[arch_name])
        if arch_name not in self.guests:
            run_dir = pathlib.Path(self.runs[arch_name])
            part = PartWriter(run_dir, self.worker)
            self._stack.callback(part.close)
            self.parts[arch_name] = part
            log = open(run_dir / f"progress-{self.worker}.log", "a")
            self._stack.callback(log.close)
            opts = dataclasses.replace(self.opts, arch=arch_name)
            try:
                guest = ArchGuest(opts, self.tree, run_dir, self.worker, part, Progress(log))
                guest.boot()
            except OrchestratorError as exc:
                self.failed_arches[arch_name] = exc.message
                raise ArchUnavailable(exc.message) from exc
            except (GuestTimeout, GuestDied, TransportLost) as exc:
                tail = guest.tail()
                guest.runner.kill()
                why = boot_failure(exc, opts.boot_timeout)
                self.failed_arches[arch_name] = f"the {arch_name} guest did not boot ({why})"
                part.write(BootFailedLine(worker=self.worker, error=self.failed_arches[arch_name],
                                          console_tail=tail))
                raise ArchUnavailable(self.failed_arches[arch_name] + "; console tail:\n"
                                      + "\n".join(tail)) from exc
            self.guests[arch_name] = guest
        return self.guests[arch_name]

    def record_not_run(self, arch_name: str, spec, index: int, why: str) -> None:
        """An item whose guest did not boot in this process is an ERROR case in the run's
        results too, so they count what pytest counts. (An arch whose build failed has no
        cases: its results say the build failed.)"""
        from ..model import CaseResult
        from .parts import CaseLine
        part = self.parts.get(arch_name)
        if part is None:
            return
        case = CaseResult(spec.id, spec.suite, spec.id, "ERROR", 0.0, reason=why.split("; console tail:")[0],
                          log=why.split("; console tail:\n", 1)[-1] if "; console tail:" in why else "",
                          worker=self.worker)
        part.write(CaseLine(index=index, case=case))

    def close_guests(self) -> None:
        for guest in self.guests.values():
            try:
                guest.close()
            except Exception as exc:  # noqa: BLE001 - one guest's shutdown must not cost the others'
                print(f"orchestrator: stopping a guest failed: {exc}", file=sys.stderr)
        self.guests.clear()

    def finish(self, stopped: bool) -> None:
        from . import parts
        for name, recorder in self.recorders.items():
            if name in self.failed_arches and not parts.read_parts(recorder.dir):
                continue   # failed before any guest: results.json already says why
            text, _ = parts.merge(recorder, [c.id for c in self.cases[name]],
                                  time.monotonic() - self.items_started, stopped)
            self.summaries.append(text)
        self._stack.close()


class ArchUnavailable(Exception):
    """The arch's kernel, image or first boot failed: each of its items fails with why."""


KEY = pytest.StashKey[PluginSession]()


class Terminated(KeyboardInterrupt):
    """SIGTERM/SIGHUP (CI's cancel, a killed terminal) ends the session as Ctrl-C does:
    pytest runs its teardown, so every guest is halted or killed and the parts merged,
    instead of the process dying with QEMU left running."""


def _stop_on_termination() -> None:
    import signal
    import threading

    def stop(signum, frame):
        raise Terminated(signal.Signals(signum).name)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, stop)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if not config.option.orchestrator_arch:
        return
    config.addinivalue_line("markers", "kernel_case: a case of a kernel suite run in a QEMU guest")
    _stop_on_termination()
    state = PluginSession(config)
    config.stash[KEY] = state
    if state.vms_per_arch:
        # The groups only hold together under loadgroup; the user asked for that by asking
        # for a number of guests per arch.
        if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") in ("no", "load"):
            config.option.dist = "loadgroup"

    if state.is_controller:
        # The builds' progress belongs on the terminal, not in pytest's capture.
        capman = config.pluginmanager.getplugin("capturemanager")
        with capman.global_and_fixture_disabled() if capman else contextlib.nullcontext():
            try:
                state.start()
            except OrchestratorError as exc:
                raise pytest.UsageError(exc.message) from exc
    else:
        state.adopt(config.workerinput)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """pytest-xdist: what each worker needs from the controller."""
    state = node.config.stash.get(KEY, None)
    if state is not None:
        node.workerinput.update(state.workerinput())


def pytest_ignore_collect(collection_path: pathlib.Path, config: pytest.Config) -> bool | None:
    """With --arch and no paths named, only the kernel cases run (not the tests found in
    testpaths or the current directory)."""
    if config.stash.get(KEY, None) is not None and not config.option.file_or_dir:
        return True
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    state = config.stash.get(KEY, None)
    if state is None:
        return
    for name, cases in state.cases.items():
        parent = ArchCollector.from_parent(session, name=name, nodeid=name)
        arch_items = []
        for index, spec in enumerate(cases, 1):
            item_name = spec.id
            if state.vms_per_arch:
                # xdist's loadgroup keeps the items whose ids end in the same "@group" on one
                # worker. The group is written into the name here, as xdist_group would
                # (which cannot on pytest 9: node ids are no longer assignable).
                item_name += f"@{name}-vm{(index - 1) % state.vms_per_arch}"
            item = CaseItem.from_parent(parent, name=item_name, path=state.source_of(spec), spec=spec,
                                        arch=name, index=index, total=len(cases))
            item.add_marker(pytest.mark.kernel_case)
            arch_items.append(item)
        # Reported as collected, so "collected N items" and -n's checks count them.
        session.ihook.pytest_collectreport(report=pytest.CollectReport(
            parent.nodeid, "passed", None, arch_items))
        items.extend(arch_items)


class ArchCollector(pytest.Collector):
    def collect(self):
        return []


class CaseFailed(Exception):
    def __init__(self, text: str):
        super().__init__(text)
        self.text = text


class CaseItem(pytest.Item):
    def __init__(self, *, spec, arch: str, index: int, total: int, **kw):
        super().__init__(**kw)
        self.spec = spec
        self.arch = arch
        self.index = index
        self.total = total

    def reportinfo(self):
        # pytest shows the domain with its dots as "::" when the node id ends with it:
        # this one does not, so "kprobe/foo.tc" stays as it is in the progress lines.
        return self.path, 0, f"{self.spec.id} [{self.arch}]"

    def runtest(self) -> None:
        from ..suites.status import FAILING, SKIPPED
        state = self.config.stash[KEY]
        try:
            guest = state.guest(self.arch)
        except ArchUnavailable as exc:
            state.record_not_run(self.arch, self.spec, self.index, str(exc))
            raise CaseFailed(f"ERROR: {exc}") from None
        results = guest.run(self.spec, self.index, self.total)
        for r in results:
            self.user_properties.append(("status", f"{r.id}: {r.status}"))
            if r.guest_logs:
                self.user_properties.append(("guest_logs", r.guest_logs))
        self.user_properties.append(("worker", state.worker))
        failing = [r for r in results if r.status in FAILING]
        if failing:
            raise CaseFailed("\n\n".join(
                f"{r.status}: {r.id}: {r.reason}" + (f"\n{r.log}" if r.log else "") for r in failing))
        skipped = [r for r in results if r.status in SKIPPED]
        if skipped:
            # Reported at the case's file, not at this line of the plugin.
            raise pytest.skip.Exception("; ".join(f"{r.status}: {r.reason}" for r in skipped),
                                        _use_item_location=True)
        xfailed = [r for r in results if r.status == "XFAIL"]
        if xfailed:
            pytest.xfail("; ".join(r.reason or "XFAIL" for r in xfailed))

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CaseFailed):
            return excinfo.value.text
        return super().repr_failure(excinfo, style)


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    state = session.config.stash.get(KEY, None)
    if state is not None:
        state.items_started = time.monotonic()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(KEY, None)
    if state is None:
        return
    state.close_guests()
    if state.is_controller and not session.config.option.collectonly:
        stopped = bool(session.shouldstop or session.shouldfail) or exitstatus == pytest.ExitCode.INTERRUPTED
        state.finish(stopped)


def pytest_collection_finish(session: pytest.Session) -> None:
    """What this process selected, per arch (after -k/-m): the merge expects each."""
    state = session.config.stash.get(KEY, None)
    if state is None or session.config.option.collectonly:
        return
    from . import parts
    for name, run_dir in state.runs.items():
        ids = [item.spec.id for item in session.items if isinstance(item, CaseItem) and item.arch == name]
        parts.write_selected(pathlib.Path(run_dir), state.worker, ids)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(KEY, None)
    if state is not None:
        state.close_guests()
        state._stack.close()   # the series worktree's lock, log files: idempotent


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(KEY, None)
    if state is None or not state.summaries:
        return
    terminalreporter.section("orchestrator")
    for text in state.summaries:
        for line in text.splitlines():
            terminalreporter.write_line(line)
