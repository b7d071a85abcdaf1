"""The guest's static busybox for an arch: the host's own binary, Debian's package for
another architecture (downloaded with `apt-get download`, unpacked into the cache), or
Debian's busybox source built with zig's musl for arches bookworm ships no binary for
(riscv64, loong64). Whatever is made is cached; nothing is committed."""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

from .. import cache, hosttools
from ..arches import Arch
from ..errors import ExitCode, OrchestratorError


# busybox options that need glibc extensions (GNU regex syntax bits, ...).
MUSL_UNSUPPORTED = (
    "CONFIG_FEATURE_VI_REGEX_SEARCH",
    "CONFIG_EXTRA_COMPAT",
    "CONFIG_TC",  # CBQ is gone from the kernel headers zig ships
)


# busybox writes through pointers it declares const (ptr_to_globals); clang assumes
# they never change and awk, ash & co. segfault. Its own escape hatch turns that off.
GLOBAL_CONST_FIX = 'CONFIG_EXTRA_CFLAGS="-DBB_GLOBAL_CONST="'


def busybox_for(arch: Arch, cache_root: pathlib.Path, say=print) -> pathlib.Path:
    spec = arch.busybox
    if spec.zig_target:
        # Keyed by the recipe, so a changed recipe never reuses an older binary.
        recipe = cache.digest(spec.zig_target, spec.zig_cpu or "", *MUSL_UNSUPPORTED, GLOBAL_CONST_FIX,
                              pathlib.Path(__file__).with_name("zigcc.py").read_text())
        dest = cache_root / "userland" / arch.name / f"busybox-{recipe[:12]}"
        if not dest.is_file():
            with cache.file_lock(dest.with_name("busybox-zig.lock"), f"busybox for {arch.name}"):
                if not dest.is_file():
                    _build_with_zig(arch, cache_root, dest, say)
        return dest
    if spec.deb_arch is None:
        path = pathlib.Path(spec.path or "/bin/busybox")
        if not path.is_file():
            raise OrchestratorError(
                f"No static busybox for {arch.name} at {path}; install it with "
                f"`apt-get install {spec.package}` (or `make deps`).", ExitCode.MISSING_HOST_TOOL)
        return path
    dest = cache_root / "userland" / arch.name / "busybox"
    if dest.is_file():
        return dest
    with cache.file_lock(dest.with_name("busybox.lock"), f"busybox for {arch.name}"):
        if dest.is_file():
            return dest
        _unpack_deb(f"{spec.package}:{spec.deb_arch}", "bin/busybox", dest, arch.name)
    return dest


def install_executable(src: pathlib.Path, dest: pathlib.Path) -> None:
    """Copy a binary into the cache whole or not at all (rename), executable."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    shutil.copyfile(src, partial)
    partial.chmod(0o755)
    partial.replace(dest)


def _unpack_deb(package: str, member: str, dest: pathlib.Path, arch_name: str) -> None:
    with tempfile.TemporaryDirectory(prefix="orchestrator-deb-") as tmp:
        got = hosttools.run_tree(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
        debs = list(pathlib.Path(tmp).glob("*.deb"))
        if got.returncode != 0 or not debs:
            raise OrchestratorError(
                f"Cannot download {package} ({(got.stderr.strip().splitlines() or ['no .deb'])[-1]}); "
                f"run `make deps ARCH={arch_name}` (it adds the dpkg architecture and updates apt).",
                ExitCode.MISSING_HOST_TOOL)
        out = pathlib.Path(tmp, "x")
        hosttools.run_tree(["dpkg-deb", "-x", str(debs[0]), str(out)], check=True)
        src = out / member
        if not src.is_file():
            raise OrchestratorError(f"{debs[0].name} holds no {member}; the package layout changed, "
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
    got = hosttools.run_tree(["apt-get", "source", "--download-only", package], cwd=root,
                             capture_output=True, text=True)
    dscs = sorted(root.glob(f"{package}_*.dsc"))
    if got.returncode != 0 or not dscs:
        raise OrchestratorError(
            f"Cannot fetch {package}'s source package (" + (got.stderr.strip().splitlines() or ["?"])[-1]
            + "); run `make deps ARCH=<arch>` (it adds a deb-src entry and updates apt).",
            ExitCode.MISSING_HOST_TOOL)
    shutil.rmtree(tree, ignore_errors=True)
    hosttools.run_tree(["dpkg-source", "--no-check", "-x", str(dscs[-1]), str(tree)], cwd=root,
                       check=True, capture_output=True)
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


def _build_with_zig(arch: Arch, cache_root: pathlib.Path, dest: pathlib.Path, say) -> None:
    spec = arch.busybox
    require_zig(arch.name)
    src = debian_source("busybox", cache_root, say)
    build = dest.parent / "busybox-build"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    # Debian's own busybox-static configuration (the applets ftracetest relies on), less
    # the features that need glibc-only interfaces musl does not have.
    config = (src / "debian/config/pkg/static").read_text()
    for option in MUSL_UNSUPPORTED:
        config = re.sub(rf"^{option}=.*$", f"# {option} is not set", config, flags=re.M)
    config = re.sub(r'^CONFIG_EXTRA_CFLAGS=.*$', GLOBAL_CONST_FIX, config, flags=re.M)
    (build / ".config").write_text(config)
    cc = zig_cc(spec.zig_target, spec.zig_cpu)
    make = ["make", "-C", str(src), f"O={build}", f"CC={cc}", "HOSTCC=gcc",
            f"AR={sys.executable} -m ziglang ar", "STRIP=true", "SKIP_STRIP=y"]
    env = zig_env()
    log = dest.parent / "busybox-build.log"
    say(f"userland: building busybox for {arch.name} with zig ({spec.zig_target}), about 2 minutes")
    with open(log, "w") as out:
        steps = [make + ["oldconfig"], make + [f"-j{os.cpu_count() or 1}", "busybox_unstripped"]]
        for argv in steps:
            # oldconfig asks about options Debian's config does not set: take every default.
            rc = hosttools.run_tree(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    input=b"\n" * 4000 if argv[-1] == "oldconfig" else None).returncode
            if rc:
                raise OrchestratorError(
                    f"Building busybox for {arch.name} with zig failed (make exit {rc}); see {log}.",
                    ExitCode.BUILD_FAILED)
    install_executable(build / "busybox_unstripped", dest)
