"""Guest programs this project writes in C (images/*.c): static, no libc, no libbpf.

Each is built per arch with the tree under test's own tools/include/nolibc (it covers
all five arches) and that tree's UAPI headers, so the syscall numbers are the ones the
guest kernel uses. The headers come from `make headers` into a cache dir of their own:
the boot route that links the initramfs into the kernel needs the programs before
the kernel build has run.
"""
from __future__ import annotations

import pathlib
import re

from .. import cache, hosttools
from ..arches import Arch
from ..errors import ExitCode, OrchestratorError
from ..kernel.source import KernelTree
from ..project import IMAGES_DIR

PROGRAM_SOURCES = {"kprobe_multi": IMAGES_DIR / "kprobe_multi.c",
                   "args_trigger": IMAGES_DIR / "args_trigger.c",
                   "readelf": IMAGES_DIR / "readelf.c",
                   "nice": IMAGES_DIR / "nice.c",
                   "lscpu": IMAGES_DIR / "lscpu.c"}
# Programs of ours that stand in for a tool the tree's selftests call by name and the
# guest's busybox lacks (no readelf applet: dynevent/add_remove_uprobe.tc is UNRESOLVED
# without one; Debian's busybox-static has no nice: two inter-event trigger cases FAIL; no
# lscpu: 00basic/trace_marker_raw.tc takes the CPU for big-endian): on the guest's PATH
# instead of in GUEST_BIN.
ON_PATH = {"readelf": "usr/bin/readelf", "nice": "usr/bin/nice", "lscpu": "usr/bin/lscpu"}
# Helpers the tree's own selftests want compiled beside them (TEST_GEN_FILES of the ftrace
# selftests' Makefile: 7.2's trigger-hist-poll.tc runs ${FTRACETEST_ROOT}/poll): the source
# in the tree, and where the binary goes relative to the guest's copy of the ftrace dir.
TREE_PROGRAMS = {"ftrace_poll": ("tools/testing/selftests/ftrace/poll.c", "poll")}
# The suite a program runs (its cases are the program's CASE() table).
PROGRAM_SUITES = ("kprobe_multi",)
# Which programs a suite needs in the guest.
SUITE_PROGRAMS = {"kprobe_multi": ("kprobe_multi",), "tcscripts": ("args_trigger",)}
GUEST_BIN = "/kto/bin"
NOLIBC = "tools/include/nolibc"
PROGRAM_RECIPE = "1"   # bump when the flags below change
CFLAGS = ("-Os", "-static", "-nostdlib", "-nostdinc", "-fno-builtin", "-fno-stack-protector",
          "-fno-asynchronous-unwind-tables", "-Wall", "-Werror=implicit-function-declaration")
_CASE = re.compile(r"^\s*CASE\((\w+)\),\s*$", re.M)


class ProgramBuildFailed(OrchestratorError):
    def __init__(self, message: str):
        super().__init__(message, ExitCode.BUILD_FAILED)


def programs_for(suites: list[str], tree_path: pathlib.Path) -> tuple[str, ...]:
    """Every program when the tree can build them, so that the image (and, on a boot
    route that links it into the kernel, the kernel) does not change with --suite;
    else only those the suites need, whose build then says why it cannot be made."""
    if (tree_path / NOLIBC / "nolibc.h").is_file():
        return (*PROGRAM_SOURCES, *(name for name, (src, _) in TREE_PROGRAMS.items() if (tree_path / src).is_file()))
    return tuple(dict.fromkeys(p for s in suites for p in SUITE_PROGRAMS.get(s, ())))


def program_cases(name: str) -> list[str]:
    """The cases a program offers, read from its CASE() table (the guest's --list prints
    the same; a host test checks they agree)."""
    return _CASE.findall(PROGRAM_SOURCES[name].read_text())


def compile_argv(arch: Arch, source: pathlib.Path, out: pathlib.Path, nolibc: pathlib.Path,
                 uapi: pathlib.Path) -> list[str]:
    if arch.llvm is not None:
        # clang is a cross compiler for every target; lld links without a sysroot.
        front = [arch.compiler, f"--target={arch.triple}", f"-fuse-ld=lld{arch.llvm if arch.llvm.startswith('-') else ''}"]
    else:
        front = [arch.compiler]
    return [*front, *CFLAGS, *arch.guest_cflags, "-include", str(nolibc / "nolibc.h"), "-I", str(nolibc),
            "-I", str(uapi), "-o", str(out), str(source)]


def uapi_headers(tree: KernelTree, arch: Arch, cache_root: pathlib.Path, say=print) -> pathlib.Path:
    """`make headers` of the tree for the arch, once per tree content."""
    out = cache_root / "headers" / tree.slug / arch.name
    stamp = out / "orchestrator-headers.json"
    key = cache.digest(tree.tree_id, *arch.make_vars())
    with cache.file_lock(out.with_name(arch.name + ".lock"), f"headers dir {out}", on_wait=say):
        if (cache.read_json(stamp) or {}).get("key") == key:
            return out / "usr" / "include"
        out.mkdir(parents=True, exist_ok=True)
        stamp.unlink(missing_ok=True)
        argv = ["make", "-s", "-C", str(tree.source), f"O={out}", *arch.make_vars(), "headers"]
        proc = hosttools.run_tree(argv, capture_output=True, text=True, env=hosttools.build_environment({})[0])
        if proc.returncode != 0:
            first = (proc.stderr or proc.stdout).strip().splitlines()[:3]
            raise ProgramBuildFailed(
                f"`make headers` for {arch.name} failed in {out} ({' / '.join(first) or f'exit {proc.returncode}'}); "
                "the guest programs need the tree's UAPI headers.")
        cache.atomic_write_json(stamp, {"key": key})
    return out / "usr" / "include"


def build_program(name: str, tree: KernelTree, arch: Arch, cache_root: pathlib.Path,
                  say=print) -> pathlib.Path:
    """The program's static binary for the arch, cached by everything that goes into it."""
    source = PROGRAM_SOURCES[name] if name in PROGRAM_SOURCES else tree.path / TREE_PROGRAMS[name][0]
    nolibc = tree.path / NOLIBC
    if not (nolibc / "nolibc.h").is_file():
        raise ProgramBuildFailed(
            f"The kernel tree {tree.path} has no {NOLIBC}/nolibc.h, which the {name} guest "
            f"program is built with; drop the {name} suite (--suite) or use Linux 6.1 or newer.")
    hosttools.require({exe: pkg for exe, pkg in arch.toolchain.items()
                       if exe == arch.compiler or exe.startswith("ld.lld")},
                      f"building the {name} guest program")
    uapi = uapi_headers(tree, arch, cache_root, say)
    out_dir = cache_root / "guestprogs"
    probe = compile_argv(arch, source, pathlib.Path("OUT"), nolibc, uapi)
    key = cache.digest(PROGRAM_RECIPE, source.read_text(), tree.tree_id, " ".join(probe),
                       hosttools.version_line((arch.compiler, "--version")))
    out = out_dir / f"{name}-{arch.name}-{key[:16]}"
    if out.exists():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    proc = hosttools.run_tree(compile_argv(arch, source, tmp, nolibc, uapi), capture_output=True,
                              text=True)
    if proc.returncode != 0:
        errors = [l for l in proc.stderr.splitlines() if "error" in l][:3] or proc.stderr.splitlines()[:3]
        raise ProgramBuildFailed(
            f"The {name} guest program did not build for {arch.name}: {' / '.join(errors)}")
    tmp.replace(out)
    return out
