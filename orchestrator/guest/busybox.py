"""The guest's static busybox for an arch: the host's own binary, Debian's package for
another architecture (downloaded with `apt-get download`, unpacked into the cache; for
riscv64, which bookworm has no binary for, trixie's through a private apt source list),
or Debian's busybox source built with zig's musl (loongarch64: no Debian release has a
loong64 busybox that works here, see the arch table); and the guest's shell, busybox's
ash alone built from that source with zig (shell_for says why). Whatever is made is
cached; nothing is committed."""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

from .. import cache, debsuite, hosttools
from ..arches import Arch
from ..errors import ExitCode, OrchestratorError


# busybox options that need glibc extensions (GNU regex syntax bits, ...).
MUSL_UNSUPPORTED = (
    "CONFIG_FEATURE_VI_REGEX_SEARCH",
    "CONFIG_EXTRA_COMPAT",
    "CONFIG_TC",  # CBQ is gone from the kernel headers zig ships
)


# busybox writes through pointers it declares const (ptr_to_globals); clang assumes
# they never change and awk, ash & co. segfault. Its own escape hatch turns that off...
GLOBAL_CONST_FIX = 'CONFIG_EXTRA_CFLAGS="-DBB_GLOBAL_CONST="'
# ...for every such pointer but one: 1.35's libbb.h declares ptr_to_globals `*const`
# outright. clang then keeps the value it read before SET_PTR_TO_GLOBALS, and awk's first
# store into its globals goes to address 4 (seen on riscv64 and loongarch64, in the guest
# and under qemu-user). The unpacked source gets that one declaration through the hatch too.
SOURCE_FIXES = (("include/libbb.h", "extern struct globals *const ptr_to_globals;",
                 "extern struct globals *BB_GLOBAL_CONST ptr_to_globals;"),)


# How long one step of fetching or building guest userland may take before it is taken
# for hung (the slowest, dropbear's build, takes about 3 minutes here).
USERLAND_BUILD_TIMEOUT = 1800
ZIGCC = pathlib.Path(__file__).with_name("zigcc.py")


def busybox_for(arch: Arch, cache_root: pathlib.Path, say=print) -> pathlib.Path:
    spec = arch.busybox
    if spec.from_source:
        return _zig_busybox(arch, cache_root, "busybox", _static_config, "busybox, about 2 minutes", say)
    if spec.deb_arch is None:
        path = pathlib.Path(spec.path or "/bin/busybox")
        if not path.is_file():
            raise OrchestratorError(
                f"No static busybox for {arch.name} at {path}; install it with "
                f"`apt-get install {spec.package}` (or `make deps`).", ExitCode.MISSING_HOST_TOOL)
        return path
    assert spec.suite, f"{arch.name}: a deb_arch busybox names its suite (arches.py checks the table)"
    dest = cache_root / "userland" / arch.name / f"busybox-{spec.suite}"
    if dest.is_file():
        return dest
    with cache.file_lock(dest.with_name("busybox.lock"), f"busybox for {arch.name}"):
        if dest.is_file():
            return dest
        with tempfile.TemporaryDirectory(prefix="orchestrator-deb-") as tmp:
            say(f"userland: downloading {spec.package} for {spec.deb_arch} from Debian {spec.suite} (once)")
            deb = debsuite.download(spec.package, spec.suite, cache_root, pathlib.Path(tmp),
                                    deb_arch=spec.deb_arch, say=say,
                                    remedy=f"retry when the network is back (`make deps ARCH={arch.name}`).")
            _unpack_member(deb, BUSYBOX_MEMBERS, dest, pathlib.Path(tmp, "x"))
    return dest


def install_executable(src: pathlib.Path, dest: pathlib.Path) -> None:
    """Copy a binary into the cache whole or not at all (rename), executable."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    shutil.copyfile(src, partial)
    partial.chmod(0o755)
    partial.replace(dest)


# Where the package puts the binary: bookworm's /bin, /usr/bin since trixie (usrmerge).
BUSYBOX_MEMBERS = ("bin/busybox", "usr/bin/busybox")


def _unpack_member(deb: pathlib.Path, members: tuple[str, ...], dest: pathlib.Path, scratch: pathlib.Path) -> None:
    hosttools.run_tree(["dpkg-deb", "-x", str(deb), str(scratch)], check=True)
    src = next((scratch / m for m in members if (scratch / m).is_file()), None)
    if src is None:
        raise OrchestratorError(f"{deb.name} holds none of {', '.join(members)}; the package layout changed, "
                                "set a busybox path for this arch in the arch table.",
                                ExitCode.INFRA_ERROR)
    install_executable(src, dest)


def debian_source(package: str, cache_root: pathlib.Path, say) -> pathlib.Path:
    """A Debian source package, unpacked once into the cache (needs a deb-src entry:
    `make deps`)."""
    root = cache_root / "userland" / f"{package}-src"
    tree = root / "tree"
    if (tree / "debian").is_dir():
        return tree
    root.mkdir(parents=True, exist_ok=True)
    say(f"userland: fetching Debian's {package} source package (once)")
    try:
        got = hosttools.run_tree(["apt-get", "source", "--download-only", package], cwd=root,
                                 capture_output=True, text=True, timeout=USERLAND_BUILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise OrchestratorError(f"Fetching {package}'s source package took over {USERLAND_BUILD_TIMEOUT} s "
                                "and was stopped; retry when the network is back.",
                                ExitCode.MISSING_HOST_TOOL) from None
    dscs = sorted(root.glob(f"{package}_*.dsc"))
    if got.returncode != 0 or not dscs:
        raise OrchestratorError(
            f"Cannot fetch {package}'s source package (" + (got.stderr.strip().splitlines() or ["?"])[-1]
            + "); run `make deps ARCH=<arch>` (it adds a deb-src entry and updates apt).",
            ExitCode.MISSING_HOST_TOOL)
    shutil.rmtree(tree, ignore_errors=True)
    hosttools.run_tree(["dpkg-source", "--no-check", "-x", str(dscs[-1]), str(tree)], cwd=root,
                       check=True, capture_output=True, timeout=USERLAND_BUILD_TIMEOUT)
    return tree


def require_zig(arch_name: str) -> None:
    if subprocess.run([sys.executable, "-m", "ziglang", "version"], capture_output=True).returncode:
        raise OrchestratorError(
            f"zig is not installed in this Python; run `make deps ARCH={arch_name}` "
            "(it runs `pip install ziglang`).", ExitCode.MISSING_HOST_TOOL)


def zig_cc(target: str, cpu: str | None) -> str:
    """CC= for a make or configure run: zig's clang with musl for `target`."""
    return f"{sys.executable} -m orchestrator.guest.zigcc {target} {cpu or '-'}"


def zig_env() -> dict[str, str]:
    """The environment zig_cc needs: this package importable from any directory (and
    nothing exported that steers a kbuild: busybox builds with one)."""
    return hosttools.build_environment({"PYTHONPATH": str(pathlib.Path(__file__).resolve().parents[2])})[0]


def built_from_source(arch: Arch, cache_root: pathlib.Path, name: str, recipe: tuple[pathlib.Path, ...],
                      build) -> pathlib.Path:
    """The arch's `name` from the cache, made once with build(dest) under a lock. Keyed by
    the zig target and the text of the modules that make it (`recipe`, and the compiler
    wrapper), so a changed recipe never reuses an older binary."""
    key = cache.digest(arch.zig.target, arch.zig.cpu or "", name, *(p.read_text() for p in (*recipe, ZIGCC)))
    dest = cache_root / "userland" / arch.name / f"{name}-{key[:12]}"
    if not dest.is_file():
        with cache.file_lock(dest.with_name(f"{name}-zig.lock"), f"{name} for {arch.name}"):
            if not dest.is_file():
                build(dest)
    return dest


def _run_steps(steps: list[tuple[list[str], bytes | None]], log: pathlib.Path, what: str, **kwargs) -> None:
    """Each (argv, stdin) in turn, output into `log`; a failed or hung step ends the
    build with one sentence naming `what` and the log."""
    with open(log, "w") as out:
        for argv, stdin in steps:
            try:
                rc = hosttools.run_tree(argv, input=stdin, stdout=out, stderr=subprocess.STDOUT,
                                        timeout=USERLAND_BUILD_TIMEOUT, **kwargs).returncode
            except subprocess.TimeoutExpired:
                raise OrchestratorError(f"{what} took over {USERLAND_BUILD_TIMEOUT} s in "
                                        f"{pathlib.Path(argv[0]).name} and was stopped; see {log}.",
                                        ExitCode.BUILD_FAILED) from None
            if rc:
                raise OrchestratorError(f"{what} failed ({pathlib.Path(argv[0]).name} exit {rc}); see {log}.",
                                        ExitCode.BUILD_FAILED)


def build_autotools(arch: Arch, cache_root: pathlib.Path, package: str, dest: pathlib.Path,
                    configure_flags: tuple[str, ...], make_steps: list[list[str]], product: str,
                    about: str, say, prepare=None) -> None:
    """Debian's source of `package` configured for the arch's zig target and made in a
    scratch dir beside `dest` (prepare(build_dir) first, if given); the built `product`
    (relative to that dir) is installed at `dest`."""
    require_zig(arch.name)
    src = debian_source(package, cache_root, say)
    build = dest.parent / f"{package}-build"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    if prepare:
        prepare(build)
    env = dict(zig_env(), CC=zig_cc(arch.zig.target, arch.zig.cpu))
    log = dest.parent / f"{package}-build.log"
    say(f"userland: building {package} for {arch.name} with zig ({arch.zig.target}), {about}, once")
    steps = [[str(src / "configure"), f"--host={arch.zig.target}", *configure_flags], *make_steps]
    _run_steps([(argv, None) for argv in steps], log, f"Building {package} for {arch.name} with zig",
               cwd=build, env=env)
    install_executable(build / product, dest)
    shutil.rmtree(build, ignore_errors=True)


def _apply_source_fixes(src: pathlib.Path) -> None:
    """SOURCE_FIXES on the cache's unpacked source (idempotent: a fixed file is left as is)."""
    for rel, before, after in SOURCE_FIXES:
        path = src / rel
        text = path.read_text()
        if before in text:
            cache.atomic_write(path, text.replace(before, after))
        elif after not in text:
            raise OrchestratorError(f"{path} has neither the line this build fixes nor the fix "
                                    f"({before!r}); busybox's source changed: update SOURCE_FIXES.",
                                    ExitCode.INFRA_ERROR)


def shell_for(arch: Arch, cache_root: pathlib.Path, say=print) -> pathlib.Path:
    """The guest's /bin/sh: busybox's ash alone, built with zig, without the standalone
    shell. Debian's busybox-static runs every applet by re-executing /proc/self/exe, so a
    command the tree's cases run shows in the kernel's exec and exit events as "exe"
    where they look for its own name: 7.2's trigger-synthetic-event-dynstring.tc keys its
    histogram on `comm == "ping"`. This shell looks commands up on PATH and execs
    /bin/ping, which is still the arch's busybox applet; only the shell itself is built."""
    return _zig_busybox(arch, cache_root, "sh", _shell_config, "the shell (busybox's ash), under a minute", say)


def _zig_busybox(arch: Arch, cache_root: pathlib.Path, name: str, config_of, what: str, say) -> pathlib.Path:
    """busybox built from Debian's source with zig for the arch, with the .config that
    config_of(debian_static_config) gives. what: the build as the progress line names it,
    with how long it takes."""
    return built_from_source(arch, cache_root, name, (pathlib.Path(__file__),),
                             lambda dest: _build_with_zig(arch, cache_root, dest, name, config_of, what, say))


def _static_config(debian: str) -> str:
    """Debian's own busybox-static configuration (the applets ftracetest relies on), less
    the features that need glibc-only interfaces musl does not have."""
    for option in MUSL_UNSUPPORTED:
        debian = re.sub(rf"^{option}=.*$", f"# {option} is not set", debian, flags=re.M)
    return re.sub(r'^CONFIG_EXTRA_CFLAGS=.*$', GLOBAL_CONST_FIX, debian, flags=re.M)


# What the shell build turns off: the standalone shell (applets run by re-executing
# busybox) and its preference for applets over PATH.
SHELL_OFF = ("CONFIG_FEATURE_SH_STANDALONE", "CONFIG_FEATURE_PREFER_APPLETS")


def _shell_config(debian: str) -> str:
    """Debian's static configuration with every applet outside the shell section off, less
    SHELL_OFF. The applets' FEATURE_ options stay as Debian has them: the shell's builtins
    share the applets' code and options (`echo -n` is FEATURE_FANCY_ECHO's). (busybox's
    allnoconfig ignores KCONFIG_ALLCONFIG: it forces every bool off.)"""
    def section(title: str) -> int:
        m = re.search(rf"^# {title}$", debian, flags=re.M)
        if m is None:
            raise OrchestratorError(f"busybox's Debian configuration has no '{title}' section; its layout "
                                    "changed: update guest/busybox.py.", ExitCode.INFRA_ERROR)
        return m.start()
    def off(text: str) -> str:
        return re.sub(r"^(CONFIG_(?!FEATURE_)\w+)=y$", r"# \1 is not set", text, flags=re.M)
    applets, shells, after = section("Applets"), section("Shells"), section("System Logging Utilities")
    kept = debian[:applets] + off(debian[applets:shells]) + debian[shells:after] + off(debian[after:])
    for option in SHELL_OFF:
        kept = re.sub(rf"^{option}=.*$", f"# {option} is not set", kept, flags=re.M)
    return _static_config(kept)


def _build_with_zig(arch: Arch, cache_root: pathlib.Path, dest: pathlib.Path, name: str, config_of, what: str,
                    say) -> None:
    require_zig(arch.name)
    src = debian_source("busybox", cache_root, say)
    _apply_source_fixes(src)
    build = dest.parent / f"{name}-build"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    (build / ".config").write_text(config_of((src / "debian/config/pkg/static").read_text()))
    cc = zig_cc(arch.zig.target, arch.zig.cpu)
    make = ["make", "-C", str(src), f"O={build}", f"CC={cc}", "HOSTCC=gcc",
            f"AR={sys.executable} -m ziglang ar", "STRIP=true", "SKIP_STRIP=y"]
    env = zig_env()
    log = dest.parent / f"{name}-build.log"
    head, _, about = what.partition(", ")
    say(f"userland: building {head} for {arch.name} with zig ({arch.zig.target}), {about}, once")
    # oldconfig asks about options Debian's config does not set: take every default.
    _run_steps([(make + ["oldconfig"], b"\n" * 4000),
                (make + [f"-j{os.cpu_count() or 1}", "busybox_unstripped"], None)],
               log, f"Building {name} for {arch.name} with zig", env=env)
    install_executable(build / "busybox_unstripped", dest)
