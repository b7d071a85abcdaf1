"""What one run of one arch is asked to do and what decides its results: the options
every front door fills (the command line, the matrix, the pytest plugin, a series run),
the checks of that input before any work, the tree, the arch, the digest of the inputs
and the record a run starts with. pipeline.py runs it; the others read it from here."""
from __future__ import annotations

import dataclasses
import pathlib
import platform
import subprocess

from . import __version__, cache, hosttools
from .arches import Arch, get_arch, with_toolchain
from .guest import busybox, dropbear, gawk, zigcc
from .kernel import build, source
from .kernel.fragments import Fragments, fragments_for
from .kernel.trees import BUILTIN_TREES, DEFAULT_TREE
from .model import SeriesInfo
from .project import (BOOT_TIMEOUT_SECONDS, CASE_TIMEOUT_SECONDS, IMAGES_DIR, PROJECT_ROOT, RESULTS_DIR,
                      TCSCRIPTS_DIR)
from .progress import Progress
from .results.confirm import DEFAULT_RETRIES
from .suites.runner import DEFAULT_SUITES
from .vm import emulators, qemu


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
    # CASES= / --case: shell globs of case ids; only the matching cases run (empty: all).
    cases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.suites:
            self.suites = list(DEFAULT_SUITES)

    @property
    def qemu_build(self) -> str:
        """The QEMU build this run's arch boots on: the one asked for, else the arch's."""
        return emulators.build_for(self.arch, self.qemu)


@dataclasses.dataclass
class RunContext:
    """What a series run adds to a plain one (series/versus_base.py)."""
    tree: source.KernelTree | None = None     # built instead of the opts' tree
    label: str = ""                           # base | series | bisect-3, in the run id
    series: SeriesInfo | None = None          # recorded as results.json "series"
    only_cases: frozenset[str] | None = None  # run just these case ids (bisect steps)
    warning_files: tuple[str, ...] = ()       # compile these again for their warnings
    quiet: bool = False                       # a try (results/confirm.py): one line at the end


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


def inputs_digest(opts: TestOptions) -> str:
    """Everything but the kernel tree that decides a run's results: the arch and its
    toolchain (with versions), the fragments, the guest's recipe (images/, the .tc cases,
    with their file modes: a `chmod +x` changes the image), the guest's userland recipe
    (the shell, awk, dropbear, busybox: their modules' text) and the host busybox it
    copies, the suites and cases, timeouts,
    the kernel command line, transport, the accelerator as far as it is known before a
    boot (qemu.accel_prospect: "auto" on a host without KVM is TCG), the QEMU machine, CPU,
    memory, SMP and arguments of the arch table, and the QEMU version. A base run is
    reused, and a case's history kept, only for the same digest."""
    arch = arch_of(opts)
    files = fragments_for(arch, opts.extra_kconfigs).all
    for top in (IMAGES_DIR, opts.tcscripts):
        files += sorted(p for p in top.rglob("*") if p.is_file())
    # The recipes of the userland built from source (the shell, awk, dropbear, a
    # from_source busybox): a changed recipe is another guest.
    files += [pathlib.Path(m.__file__) for m in (busybox, gawk, dropbear, zigcc)]
    parts = [f"{p.relative_to(PROJECT_ROOT) if p.is_relative_to(PROJECT_ROOT) else p}\0{cache.file_digest(p)}"
             f"\0{p.stat().st_mode & 0o7777:o}" for p in files]
    host_busybox = pathlib.Path(arch.busybox.path or "/bin/busybox")
    if not arch.busybox.from_source and arch.busybox.deb_arch is None and host_busybox.is_file():
        parts.append(f"busybox\0{cache.file_digest(host_busybox)}")
    versions = sorted(f"{k}={v}" for k, v in build.toolchain_versions(arch).items())
    return cache.digest(arch.name, " ".join(arch.make_vars()), ",".join(opts.suites), ",".join(opts.cases),
                        str(opts.case_timeout), str(opts.boot_timeout), opts.cmdline, opts.transport,
                        qemu.accel_prospect(arch, opts.accel),
                        hosttools.version_line((arch.qemu.binary, "--version")),
                        repr(arch.qemu), repr(arch.busybox), repr(arch.zig), repr(arch.ssh),
                        qemu.kernel_cmdline(arch, opts.cmdline),
                        *versions, *parts)


def base_pointer(opts: TestOptions, tree_id: str, digest: str | None = None) -> pathlib.Path:
    """Where the newest complete run of every case of a tree with these inputs is named:
    the base a series on that tree is compared with (series/versus_base.py). digest: the
    run's inputs_digest when the caller already has it."""
    digest = digest or inputs_digest(opts)
    return opts.cache_root / "baselines" / f"{cache.digest(tree_id, digest)[:24]}.json"


def _project_revision() -> str:
    out = subprocess.run(["git", "-C", str(PROJECT_ROOT), "describe", "--always", "--dirty"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def run_meta(opts: TestOptions, arch: Arch, tree: source.KernelTree, fragments: Fragments,
             label: str = "", series: SeriesInfo | None = None) -> dict:
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
