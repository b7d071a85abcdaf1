"""Config and build stages: allnoconfig + fragments, then an out-of-tree kbuild with ccache.

One build dir per (tree location, arch) so every later build of the same tree is
incremental; a stamp holding the full key (tree id, merged fragment, toolchain)
lets an unchanged re-run skip make altogether.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import shutil
import subprocess
import time
from typing import Callable

from .. import cache, hosttools
from . import kconfig, seed, treeview
from ..arches import Arch
from ..errors import ExitCode, OrchestratorError
from ..progress import Progress, fmt_duration
from .source import KernelTree

STAMP = "orchestrator-build.json"
ALLCONFIG = "orchestrator.allconfig"
STEPS_SEEN = "build-steps.json"   # in the cache root: first builds' step counts
BUILD_LOG = "orchestrator-build.log"
# kbuild's object that .incbins the built-in initramfs (usr/initramfs_data.S).
INITRAMFS_OBJECT = "usr/initramfs_data.o"
# modules_install output, copied into the initramfs (/lib/modules/<release>).
MODULES_DIR = "orchestrator-modules"
# Bump when the way a build is made changes, so old stamps stop matching.
BUILD_RECIPE = "1"
_STEP = re.compile(r"^  ([A-Z][A-Z0-9_]*)\s+(\S.*)$")
_ERROR = re.compile(r"(error:|Error \d+|undefined reference|No rule to make target)")


@dataclasses.dataclass
class BuildResult:
    arch: str
    build_dir: pathlib.Path
    kernel_image: pathlib.Path
    vmlinux: pathlib.Path
    dotconfig: pathlib.Path
    log: pathlib.Path
    key: str
    reused: bool
    config_seconds: float
    build_seconds: float
    steps: int
    dropped: list[kconfig.Dropped]
    toolchain: dict[str, str]
    modules: pathlib.Path | None
    make_command: list[str]         # the build step's make, as run in the tree itself
    make_environment: dict[str, str]   # what this tool sets for make over the user's environment
    ignored_environment: list[str]     # exported variables kept from make (ARCH, LLVM, MAKEFLAGS...)


class BuildFailed(OrchestratorError):
    def __init__(self, message: str, log: pathlib.Path, first_errors: list[str]):
        super().__init__(message, ExitCode.BUILD_FAILED)
        self.log = log
        self.first_errors = first_errors


def toolchain_versions(arch: Arch) -> dict[str, str]:
    versions = {"compiler": hosttools.version_line((arch.compiler, "--version")),
                "pahole": hosttools.version_line(("pahole", "--version")),
                "make": hosttools.version_line(("make", "--version")),
                "ccache": hosttools.version_line(("ccache", "--version"))}
    if arch.llvm is None:
        versions["binutils"] = hosttools.version_line((f"{arch.cross_compile}ld", "--version"))
    return versions


def build_dir_for(cache_root: pathlib.Path, tree: KernelTree, arch: Arch, flavor: str = "") -> pathlib.Path:
    """One dir per tree, arch and user config (flavor: Fragments.flavor, "debug"); a
    toolchain other than the table's gets its own, so switching LLVM=1 on and off does not
    rebuild everything each time."""
    from ..arches import get_arch
    name = arch.name + (f"-{flavor}" if flavor else "")
    if arch.make_vars() != get_arch(arch.name).make_vars():
        name += "-" + cache.digest(*arch.make_vars())[:8]
    if treeview.unshare_prefix() is not None:
        # Its .cmd files hold the view's paths: never built at the tree's own (treeview.py).
        name += "-view"
    return cache_root / "build" / tree.slug / name


def tree_view(cache_root: pathlib.Path, tree: KernelTree, build_dir: pathlib.Path) -> treeview.TreeView | None:
    """The view every tree builds in (kernel/treeview.py); None where namespaces are not allowed."""
    if treeview.unshare_prefix() is None:
        return None
    return treeview.TreeView.under(cache_root, tree.source, build_dir)


def _make_argv(tree: KernelTree, arch: Arch, build_dir: pathlib.Path, *targets: str,
               view: treeview.TreeView | None = None) -> list[str]:
    cc = arch.compiler
    src, out = (view.seen_tree, view.seen_build) if view else (tree.source, build_dir)
    argv = ["make", "-C", str(src), f"O={out}", *arch.make_vars(),
            f"CC=ccache {cc}", f"-j{os.cpu_count() or 1}", *targets]
    return view.wrap(argv) if view else argv


def _version_line(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _steps_key(arch: Arch, tree: KernelTree, allconfig: str) -> str:
    """Builds of one arch, kernel version line and config take about as many kbuild steps
    (another config can take far fewer: a test's small one, 1263 against 1840)."""
    return f"{arch.name} {_version_line(tree.version)} {cache.digest(allconfig)[:12]}"


def first_build_steps(cache_root: pathlib.Path, arch: Arch, tree: KernelTree, allconfig: str) -> int | None:
    """A first build's step count, for its total and time left: this cache's last first
    build of the arch, version line and config (another tree or build dir), else the arch
    table's measured count of the default config for the nearest version line; None when
    neither knows the arch."""
    seen = (cache.read_json(cache_root / STEPS_SEEN) or {}).get(_steps_key(arch, tree, allconfig))
    if isinstance(seen, int) and seen > 0:
        return seen

    def number(line: str) -> int | None:
        m = re.match(r"(\d+)\.(\d+)", line)
        return int(m.group(1)) * 1000 + int(m.group(2)) if m else None
    mine = number(tree.version)
    if mine is None:
        return None
    known = {line: n for line in arch.build_steps if (n := number(line)) is not None}
    if not known:
        return None
    return arch.build_steps[min(known, key=lambda line: abs(known[line] - mine))]


def _remember_steps(cache_root: pathlib.Path, arch: Arch, tree: KernelTree, allconfig: str, steps: int) -> None:
    seen = cache.read_json(cache_root / STEPS_SEEN) or {}
    seen[_steps_key(arch, tree, allconfig)] = steps
    cache.atomic_write_json(cache_root / STEPS_SEEN, seen)


def make_environment(cache_root: pathlib.Path) -> dict[str, str]:
    """What the kernel's make is given over the user's environment (the rest of which is
    hosttools.build_environment's: nothing that steers kbuild)."""
    return {"CCACHE_DIR": str(cache_root / "ccache"),
            # Debug info puts the cwd in the hash by default; build dirs differ per tree
            # location, and sharing hits across them is the point of ccache here.
            "CCACHE_NOHASHDIR": "1",
            "CCACHE_MAXSIZE": os.environ.get("CCACHE_MAXSIZE", "15G"),
            # A miss costs ccache a run of the preprocessor before gcc's own, and a hit
            # the same: in depend mode it trusts the dependency file kbuild has gcc write
            # (-Wp,-MMD) instead. Objects stored as they are, not compressed on every
            # miss. A cold x86_64 build took 356 s with neither and 278 s with both (plain
            # gcc 263-293 s); the same build in another dir hit 1186 of 1192 compiles.
            "CCACHE_DEPEND": "1", "CCACHE_NOCOMPRESS": "1",
            "KBUILD_BUILD_USER": "orchestrator", "KBUILD_BUILD_HOST": "localhost",
            # The compiler's words in ASCII whatever the host's locale: the same warning
            # reads the same on the base and the series (and in a mail). Not LC_ALL:
            # kbuild unexports it.
            "LANG": "C", "LC_CTYPE": "C", "LC_MESSAGES": "C"}


def build_key(tree_id: str, allconfig_text: str, route_digest: str, arch: Arch,
              toolchain: dict[str, str], ours: dict[str, str]) -> str:
    """What a build dir's stamp must match to be reused: everything that changes what
    the build makes. The environment make gets is `ours` over hosttools.BUILD_PASSES, of
    which only the tools PATH finds matter (their versions are `toolchain`); ccache's
    settings change how fast, not what."""
    environment = sorted(f"{k}={v}" for k, v in ours.items() if not k.startswith("CCACHE_"))
    return cache.digest(BUILD_RECIPE, tree_id, allconfig_text, route_digest, arch.name,
                        " ".join(arch.make_vars()), *sorted(f"{k}={v}" for k, v in toolchain.items()),
                        *environment)


def _run_make(argv: list[str], env: dict[str, str], log_file, progress: Progress, label: str,
              expected_steps: int | None, view: treeview.TreeView | None) -> tuple[int, int]:
    """Run make, tee its output to the log (the tree's own paths in it, not the view's),
    count kbuild steps for the status line."""
    start = time.monotonic()
    steps = 0
    last = ""
    log_file.write(f"$ {' '.join(argv)}\n")
    log_file.flush()
    # Own session: a Ctrl-C is handled by us, and we kill the whole make tree.
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            if view is not None:
                line = view.to_real(line)
            log_file.write(line)
            m = _STEP.match(line)
            if m:
                steps += 1
                last = f"{m.group(1)} {m.group(2).strip()}"
            elapsed = time.monotonic() - start
            pct = ""
            if expected_steps:
                left = elapsed / steps * max(0, expected_steps - steps) if steps else 0
                pct = (f" of ~{expected_steps} (~{min(99, 100 * steps // expected_steps)}%"
                       + (f", ~{fmt_duration(left)} left" if steps > 20 else "") + ")")
            progress.status(f"{label}: {steps} steps{pct}, {fmt_duration(elapsed)}  {last}")
        rc = proc.wait()
    except BaseException:
        hosttools.kill_group(proc)
        raise
    finally:
        log_file.flush()
    return rc, steps


def first_errors(log: pathlib.Path, limit: int = 8, source_roots: tuple[str, ...] = ()) -> list[str]:
    """The log's first error lines; a path under one of source_roots (the tree, or where the
    view shows it) is given relative to it, as a maintainer reads it: `kernel/x.c:1:2: error`."""
    out = []
    try:
        for line in log.read_text(errors="replace").splitlines():
            if _ERROR.search(line):
                for root in source_roots:
                    line = line.replace(root.rstrip("/") + "/", "")
                out.append(line.strip())
                if len(out) >= limit:
                    break
    except OSError:
        pass
    return out


def configure_and_build(tree: KernelTree, arch: Arch, fragments: list[pathlib.Path],
                        cache_root: pathlib.Path, progress: Progress,
                        route_options: dict[str, str] | None = None, route_digest: str = "",
                        flavor: str = "",
                        relink_initramfs: Callable[[pathlib.Path | None], None] | None = None) -> BuildResult:
    """route_options: config the boot route adds (required); route_digest: changes when
    what the route builds in (DTB, initramfs) changes, so the stamp stops matching.
    relink_initramfs: a route that links the initramfs into the kernel gets the
    modules_install tree (None: no modules) once the build is done and puts the image
    with them where the kernel links its initramfs from; the kernel is linked again."""
    merged = kconfig.merge(fragments)
    for name, value in (route_options or {}).items():
        merged[name] = kconfig.Option(name, value, True, "boot route")
    allconfig_text = kconfig.render_allconfig(merged)
    toolchain = toolchain_versions(arch)
    ours = make_environment(cache_root)
    env, ignored = hosttools.build_environment(ours)
    key = build_key(tree.tree_id, allconfig_text,
                    route_digest + (" linked again with its initramfs, assembled without ccache"
                                    if relink_initramfs else ""),
                    arch, toolchain, ours)
    build_dir = build_dir_for(cache_root, tree, arch, flavor)
    build_dir.mkdir(parents=True, exist_ok=True)
    image = build_dir / arch.kernel_image
    vmlinux = build_dir / "vmlinux"
    log_path = build_dir / BUILD_LOG
    view = tree_view(cache_root, tree, build_dir)
    source_roots = tuple(str(p) for p in ((view.seen_tree,) if view else ()) + (tree.source,))
    # A series worktree: the build dir of the tree it is a worktree of.
    twin_dir = build_dir_for(cache_root, KernelTree(tree.builds_as, "", tree.version, "", None), arch, flavor) \
        if tree.builds_as is not None else None

    with cache.file_lock(build_dir.with_name(arch.name + ".lock"), f"build dir {build_dir}",
                         on_wait=progress.say):
        stamp = cache.read_json(build_dir / STAMP) or {}

        def targets_of(dotconfig: dict[str, str]) -> list[str]:
            modular = dotconfig.get("CONFIG_MODULES") == "y"
            # vmlinux-gdb.py and scripts/gdb/ in the build dir: gdb loads the tree's lx-
            # helpers from beside the vmlinux it is given (`shell --gdb`).
            return _kernel_targets(arch) + (["modules"] if modular else []) + \
                (["scripts_gdb"] if dotconfig.get("CONFIG_GDB_SCRIPTS") == "y" else [])

        def result(reused: bool, config_seconds: float, build_seconds: float, steps: int,
                   dropped: list[kconfig.Dropped], dotconfig: dict[str, str]) -> BuildResult:
            return BuildResult(arch.name, build_dir, image, vmlinux, build_dir / ".config", log_path, key,
                               reused, config_seconds, build_seconds, steps, dropped, toolchain,
                               _modules_dir(build_dir, dotconfig),
                               _make_argv(tree, arch, build_dir, *targets_of(dotconfig)), ours, ignored)
        if stamp.get("key") == key and image.exists() and vmlinux.exists():
            dotconfig = kconfig.read_dotconfig(build_dir / ".config")
            dropped = kconfig.compare(merged, dotconfig, tree.path, arch.srcarch)
            return result(True, 0.0, 0.0, int(stamp.get("steps", 0)), dropped, dotconfig)
        # The stamp no longer describes the dir once we touch it.
        (build_dir / STAMP).unlink(missing_ok=True)
        # A worktree's first build: from a copy of its tree's build, when there is one.
        seeded = view is not None and twin_dir is not None and not vmlinux.exists() and \
            seed.seed_from_tree(twin_dir, build_dir, tree.builds_as, tree.path, STAMP,
                                arch.name + ".lock", progress.say)
        cache.atomic_write(build_dir / ALLCONFIG, allconfig_text)
        try:
            log_file = open(log_path, "w")
        except OSError as exc:
            raise OrchestratorError(f"Cannot write {log_path}: {exc.strerror}; check the cache "
                                    "dir's disk.", ExitCode.INFRA_ERROR) from exc
        with log_file:
            t0 = time.monotonic()
            rc, _ = _run_make(_make_argv(tree, arch, build_dir, f"KCONFIG_ALLCONFIG={build_dir / ALLCONFIG}",
                                         "allnoconfig", view=view), env, log_file, progress,
                              f"config {arch.name}", None, view)
            config_seconds = time.monotonic() - t0
            if rc != 0:
                progress.clear()
                errs = first_errors(log_path, source_roots=source_roots)
                raise BuildFailed(f"The {arch.name} config step failed ({errs[0] if errs else f'make exit {rc}'}); "
                                  f"see {log_path}.", log_path, errs)
            dotconfig = kconfig.read_dotconfig(build_dir / ".config")
            dropped = kconfig.compare(merged, dotconfig, tree.path, arch.srcarch)
            kconfig.check_required(dropped)
            t1 = time.monotonic()
            targets = targets_of(dotconfig)
            modular = "modules" in targets
            # A dir with no vmlinux builds everything: its step count is the arch's first-build
            # count, the estimate of the next first build. An incremental build's count says
            # nothing about another's, so it gets no estimate and is not remembered.
            cold = not vmlinux.exists() and not seeded
            rc, steps = _run_make(_make_argv(tree, arch, build_dir, *targets, view=view),
                                  env, log_file, progress, f"build {arch.name}",
                                  first_build_steps(cache_root, arch, tree, allconfig_text) if cold else None,
                                  view)
            if rc == 0 and modular:
                staging = build_dir / MODULES_DIR
                shutil.rmtree(staging, ignore_errors=True)
                rc, _ = _run_make(_make_argv(tree, arch, build_dir, "modules_install",
                                             f"INSTALL_MOD_PATH={staging}", "INSTALL_MOD_STRIP=1", view=view),
                                  env, log_file, progress, f"modules_install {arch.name}", None, view)
            if rc == 0 and relink_initramfs is not None:
                relink_initramfs(build_dir / MODULES_DIR / "lib" / "modules" if modular else None)
                # ccache keys usr/initramfs_data.S on its text and headers, not on the image it
                # .incbins, and handed back the object of an earlier image (a kernel whose
                # initramfs had no modules, seen on loongarch64): that object is assembled
                # again, by the compiler itself.
                (build_dir / INITRAMFS_OBJECT).unlink(missing_ok=True)
                rc, relink_steps = _run_make(_make_argv(tree, arch, build_dir, *_kernel_targets(arch),
                                                        view=view),
                                             dict(env, CCACHE_DISABLE="1"), log_file, progress,
                                             f"relink {arch.name} with its initramfs", None, view)
                steps += relink_steps
            build_seconds = time.monotonic() - t1
            if view is not None:
                view.repoint_links()
            if rc == 0 and cold:
                _remember_steps(cache_root, arch, tree, allconfig_text, steps)
        progress.clear()
        if rc != 0 or not image.exists():
            errs = first_errors(log_path, source_roots=source_roots)
            raise BuildFailed(
                f"The {arch.name} kernel build failed after {fmt_duration(build_seconds)}: "
                f"{errs[0] if errs else f'make exit {rc}'}; the full log is {log_path}.",
                log_path, errs)
        cache.atomic_write_json(build_dir / STAMP, {
            "key": key, "tree_id": tree.tree_id, "source": str(tree.source), "steps": steps,
            "view": view.as_record() if view else None, "seeded_from": str(twin_dir) if seeded else None,
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "seconds": round(build_seconds, 1)})
        return result(False, config_seconds, build_seconds, steps, dropped, dotconfig)


def single_targets(build_dir: pathlib.Path, arch: Arch, cache_root: pathlib.Path, targets: list[str],
                   *make_args: str, timeout: float = 600) -> subprocess.CompletedProcess | None:
    """kbuild's single-target build (`kernel/x.s`) in a build dir this tool made, with the
    toolchain, environment and view its build used (its stamp names the tree); `-k`, so
    one file that does not compile leaves the others compiled. None for a dir whose stamp
    names no tree (made before stamps did)."""
    stamp = cache.read_json(build_dir / STAMP) or {}
    view = treeview.TreeView.from_record(stamp["view"]) if stamp.get("view") else None
    if view is None and not stamp.get("source"):
        return None
    src, out = (view.seen_tree, view.seen_build) if view else (pathlib.Path(stamp["source"]), build_dir)
    argv = ["make", "-C", str(src), f"O={out}", *arch.make_vars(), f"CC=ccache {arch.compiler}",
            f"-j{os.cpu_count() or 1}", "-k", *make_args, *targets]
    env, _ = hosttools.build_environment(make_environment(cache_root))
    try:
        return hosttools.run_tree(view.wrap(argv) if view else argv, cwd=build_dir, env=env,
                                  capture_output=True, text=True, errors="replace", timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def _kernel_targets(arch: Arch) -> list[str]:
    """The arch's boot image and vmlinux, once each (loongarch64 boots vmlinux itself)."""
    return list(dict.fromkeys([arch.build_target, "vmlinux"]))


def _modules_dir(build_dir: pathlib.Path, dotconfig: dict[str, str]) -> pathlib.Path | None:
    staging = build_dir / MODULES_DIR / "lib" / "modules"
    return staging if dotconfig.get("CONFIG_MODULES") == "y" and staging.is_dir() else None


def copy_log(result_dir: pathlib.Path, log: pathlib.Path) -> None:
    try:
        shutil.copyfile(log, result_dir / "build.log")
    except OSError:
        pass
