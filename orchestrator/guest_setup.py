"""A guest for one arch, in the steps every caller shares (a `test` run, the pytest
plugin's controller and workers, a series' per-patch builds): the kernel and image made
under the cache's lock, the QEMU command line, the runner that boots and restarts the
guest, its first boot, one case on it.

prepare_guest records nothing itself: it tells a caller that keeps a run's record of each
stage as it starts and ends (recorded_in), and a caller that only finds the builds made
(a pytest worker) does not listen."""
from __future__ import annotations

import dataclasses
import pathlib
import shutil
from typing import BinaryIO, Callable, Union

from . import cache
from .arches import Arch
from .errors import OrchestratorError
from .guest import bootroute, guestprog, image
from .kernel import build, kconfig, pahole, source, symbolize
from .kernel.fragments import Fragments, fragments_for
from .kernel.kconfig import ConfigFailed, check_user_fragments
from . import model
from .model import CaseResult, ConfigOutcome
from .progress import Progress, fmt_duration
from .results.recorder import Recorder
from .run_inputs import TestOptions, arch_of, check_inputs
from .suites.runner import CaseSpec, GuestRunner, not_built
from .suites.splats import SplatDetector
from .vm import qemu
from .vm.console import ConsoleSession
from .vm.ssh import SshSession
from .vm.transport import GuestDied, Transport, TransportLost


@dataclasses.dataclass
class PreparedGuest:
    """A built kernel and image for one arch, and the QEMU command line that boots them."""
    arch: Arch
    argv: list[str]
    accel: qemu.Accel
    build: build.BuildResult
    image: image.ImageResult
    boot_route: dict          # results.json "boot_route"
    source: pathlib.Path      # what the kernel was built from (a user's tree, or its snapshot)


# -- what prepare_guest tells as it goes --------------------------------------------
@dataclasses.dataclass(frozen=True)
class StageStarted:
    stage: str                      # "image" or "build"


@dataclasses.dataclass(frozen=True)
class StageFailed:
    stage: str
    error: OrchestratorError        # a build's ConfigFailed or BuildFailed carries what it found


@dataclasses.dataclass(frozen=True)
class RouteChosen:
    boot_route: dict                # results.json "boot_route", known before the build starts


@dataclasses.dataclass(frozen=True)
class ImageMade:
    image: image.ImageResult


@dataclasses.dataclass(frozen=True)
class Built:
    build: build.BuildResult
    config: ConfigOutcome           # the options dropped, and what the tree's pahole means


PrepareEvent = Union[StageStarted, StageFailed, RouteChosen, ImageMade, Built]


def _unheard(event: PrepareEvent) -> None:
    """A caller with no record to keep (a pytest worker: the controller kept it)."""


def recorded_in(recorder: Recorder) -> Callable[[PrepareEvent], None]:
    """prepare_guest's stages into a run's record as they happen, so a build that fails
    or is interrupted leaves its stage (and log) in results.json."""
    def record(event: PrepareEvent) -> None:
        match event:
            case StageStarted(stage):
                recorder.stage_started(stage)
            case StageFailed("build", ConfigFailed() as exc):
                recorder.set("config", ConfigOutcome(dropped=exc.dropped))
                recorder.stage_finished("build", "failed", error=exc.message)
            case StageFailed("build", build.BuildFailed() as exc):
                build.copy_log(recorder.dir, exc.log)
                recorder.stage_finished("build", "failed", error=exc.message, first_errors=exc.first_errors)
            case StageFailed(stage, exc):
                recorder.stage_finished(stage, "failed", error=exc.message)
            case RouteChosen(boot_route):
                recorder.set("boot_route", boot_route)
            case ImageMade(img):
                recorder.stage_finished("image", reused=img.reused, path=str(img.path), bytes=img.size,
                                        **({"program_errors": img.program_errors} if img.program_errors else {}))
            case Built(b, config):
                # What the run keeps of the build, for the same report.
                build.copy_log(recorder.dir, b.log)
                shutil.copyfile(b.dotconfig, recorder.dir / "config")
                recorder.set_versions(**b.toolchain)
                recorder.set("config", config)
                recorder.stage_finished("build", reused=b.reused, build_dir=str(b.build_dir), steps=b.steps,
                                        config_seconds=round(b.config_seconds, 1), make_command=b.make_command,
                                        make_environment=b.make_environment,
                                        ignored_environment=b.ignored_environment)
    return record


def prepare_guest(opts: TestOptions, tree: source.KernelTree, progress: Progress,
                  fragments: Fragments | None = None,
                  on_stage: Callable[[PrepareEvent], None] = _unheard, guests: int = 1) -> PreparedGuest:
    """Config, build and image for opts.arch under one lock in the cache, so parallel
    processes (pytest-xdist workers) make them once and the others find them reused.
    on_stage hears each stage start and end (recorded_in: into a run's record).
    fragments: the fragments as the caller already checked them (else checked here).
    guests: how many guests of it will run at once (the QEMU command line fits them to
    the host's cores: qemu.tcg_threads)."""
    arch = arch_of(opts)
    tree = _buildable(opts, tree, arch, progress)
    if fragments is None:
        fragments = check_inputs(opts, arch)
        check_user_fragments(fragments.user, tree.path, arch.srcarch)
    programs = guestprog.programs_for(opts.suites, tree.path)
    with_sshd = opts.transport == "ssh"

    def make_image(modules: pathlib.Path | None) -> image.ImageResult:
        return image.build_image(tree, arch, opts.cache_root, modules, programs, say=progress.say,
                                 tcscripts=opts.tcscripts, with_sshd=with_sshd)

    def image_stage(modules: pathlib.Path | None) -> image.ImageResult:
        on_stage(StageStarted("image"))
        try:
            img = make_image(modules)
        except OrchestratorError as exc:
            on_stage(StageFailed("image", exc))
            raise
        on_stage(ImageMade(img))
        return img

    with one_build_at_a_time(opts, progress):
        route = None
        if arch.boot_route == "builtin":
            # Linked in first without modules; the build then links it again with its own.
            route = _builtin_route(opts, tree, arch, image_stage(None).path, fragments)
        on_stage(RouteChosen(boot_route_record(route)))
        on_stage(StageStarted("build"))
        try:
            b = _configure_and_build(opts, tree, arch, fragments, route, progress,
                                     lambda modules: make_image(modules).path)
        except OrchestratorError as exc:
            on_stage(StageFailed("build", exc))
            raise
        on_stage(Built(b, ConfigOutcome(dropped=b.dropped, notes=pahole.notes(tree.path))))
        progress.say(f"build {arch.name}: " + (f"reused {b.build_dir}" if b.reused else
                                               f"{b.steps} steps in {fmt_duration(b.build_seconds)}"))
        # On the built-in route: the image the build linked in last (made then, found now).
        img = image_stage(b.modules)
    accel = qemu.choose_accel(arch, b.kernel_image, opts.cache_root, opts.accel, say=progress.say)
    return PreparedGuest(arch, qemu.qemu_argv(arch, b.kernel_image, img.path, accel, opts.cmdline, guests),
                         accel, b, img, boot_route_record(route), tree.source)


def one_build_at_a_time(opts: TestOptions, progress: Progress):
    """Held for a kernel build and its image, whichever run, worker or arch asks: two
    builds at once on two cores only make both slower (and each other's ccache misses)."""
    return cache.file_lock(opts.cache_root / "locks" / "prepare.lock", "kernel builds and images",
                           on_wait=progress.say)


def build_only(opts: TestOptions, tree: source.KernelTree, progress: Progress) -> build.BuildResult:
    """Config and build as run_test does them (with the boot route's part), no boot: on the
    built-in route the kernel keeps the image without modules (its stamp says so)."""
    arch = arch_of(opts)
    tree = _buildable(opts, tree, arch, progress)
    fragments = fragments_for(arch, opts.extra_kconfigs)
    route = None
    with one_build_at_a_time(opts, progress):
        if arch.boot_route == "builtin":
            img = image.build_image(tree, arch, opts.cache_root, None,
                                    guestprog.programs_for(opts.suites, tree.path), say=progress.say,
                                    tcscripts=opts.tcscripts, with_sshd=opts.transport == "ssh")
            route = _builtin_route(opts, tree, arch, img.path, fragments)
        return _configure_and_build(opts, tree, arch, fragments, route, progress)


def _buildable(opts: TestOptions, tree: source.KernelTree, arch: Arch, progress: Progress) -> source.KernelTree:
    """A user's tree configured in place, or on the built-in DTB route (which writes its
    device tree into the sources, the only place kbuild takes it from), is built from its
    snapshot in the cache: never written, and never refused by kbuild."""
    dtb = f"{arch.name}'s device tree (the built-in DTB boot route)" if arch.boot_route == "builtin" else None
    return source.buildable(tree, opts.cache_root, dtb, progress.say)


def _builtin_route(opts: TestOptions, tree: source.KernelTree, arch: Arch,
                   initramfs: pathlib.Path, fragments: Fragments) -> bootroute.BuiltinBoot:
    return bootroute.prepare(arch, tree, build.build_dir_for(opts.cache_root, tree, arch, fragments.flavor),
                             initramfs, qemu.kernel_cmdline(arch, opts.cmdline))


def _configure_and_build(opts: TestOptions, tree: source.KernelTree, arch: Arch,
                         fragments: Fragments, route: bootroute.BuiltinBoot | None,
                         progress: Progress,
                         image_with: Callable[[pathlib.Path], pathlib.Path] | None = None) -> build.BuildResult:
    """What the boot route builds in (DTB, initramfs) is part of the build and its key.
    image_with(modules) -> the image holding them: on the built-in route the kernel is
    linked again with it once its modules are built."""
    relink = (lambda modules: bootroute.relink(route, image_with(modules) if modules else None)) \
        if route is not None and image_with is not None else None
    return build.configure_and_build(tree, arch, fragments.all, opts.cache_root, progress,
                                     route.config if route else None, route.digest if route else "",
                                     flavor=fragments.flavor, relink_initramfs=relink)


def boot_route_record(route: bootroute.BuiltinBoot | None) -> dict:
    if route is not None:
        return {"name": "builtin", "what": route.description}
    return {"name": "direct", "what": "QEMU -kernel/-initrd/-append"}


# -- the guest ------------------------------------------------------------------------
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


def transport_record(transport: str, started: list[Transport]) -> model.Transport:
    return model.Transport.of_sessions(transport, started)


def guest_runner(opts: TestOptions, prepared: PreparedGuest, console_log: BinaryIO, detector: SplatDetector,
                 sessions: list[Transport], progress: Progress, case_logs_dir: pathlib.Path) -> GuestRunner:
    """The runner of one guest of the prepared kernel: it boots it, and boots it again
    after a crash; its console goes to console_log and through detector."""
    arch = prepared.arch
    return GuestRunner(session_factory(arch, opts.transport, prepared.argv, console_log, detector.feed, sessions),
                       detector, progress, opts.case_timeout, opts.boot_timeout, arch.halt_command,
                       case_logs_dir=case_logs_dir, leak_scan=has_kmemleak(prepared.build),
                       name_pc=symbolize.Symbolizer(prepared.build.vmlinux, arch, []).name)


def has_kmemleak(built: build.BuildResult) -> bool:
    """Whether the kernel can scan for leaks (the debug fragment's kmemleak, where the arch
    has it): the runner then scans after the last case."""
    return kconfig.read_dotconfig(built.dotconfig).get("CONFIG_DEBUG_KMEMLEAK") == "y"


@dataclasses.dataclass(frozen=True)
class AtShell:
    """A guest's first boot, up to its shell."""
    session: Transport
    release: str                     # uname -r
    taint: int                       # /proc/sys/kernel/tainted at the shell
    seconds_to_shell: float          # from QEMU's start, by the host's clock
    uptime_at_shell: float | None    # by the guest's


def first_boot(runner: GuestRunner) -> AtShell:
    """The guest's first boot (GuestRunner restarts later ones itself); GuestTimeout,
    GuestDied or TransportLost when it reached no shell (boot_failure says which)."""
    session = runner.boot()
    return AtShell(session, session.kernel_release, session.boot_taint, runner.boot_seconds[-1],
                   session.guest_boot_seconds)


def boot_failure(exc: Exception, boot_timeout: float) -> str:
    """Why a guest did not reach its shell, in a few words (GuestDied, TransportLost or
    GuestTimeout from GuestRunner.boot)."""
    if isinstance(exc, GuestDied):
        return "QEMU exited"
    if isinstance(exc, TransportLost):
        return f"SSH: {exc}"
    return f"no shell within {boot_timeout:g}s"


def run_case(runner: GuestRunner, spec: CaseSpec, index: int, total: int,
             program_errors: dict[str, str]) -> list[CaseResult]:
    """One case on the guest (two results for a case and its instance twin); ERROR without
    a boot when the image lacks the guest program its suite runs."""
    unbuilt = not_built(spec, program_errors)
    return [unbuilt] if unbuilt else runner.run_case(spec, index, total, f"/tmp/kto/{index}")
