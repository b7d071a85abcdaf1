"""Image stage: a small initramfs per arch, cached by the hash of everything in it.

Holds the arch's static busybox (/bin/busybox and its applet links), a shell of our own
build at /bin/sh (guest/busybox.py: shell_for), GNU awk (guest/gawk.py), the tree's own
ftracetest directory, the project's tcscripts/, the guest helpers from images/ and the
project's C guest programs (guestprog.py) at /kto/bin.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import stat

from .. import cache
from . import busybox, dropbear, gawk, guestprog
from ..arches import Arch
from .cpio import CpioWriter
from ..errors import OrchestratorError
from ..kernel.source import KernelTree
from ..project import IMAGES_DIR, TCSCRIPTS_DIR

FTRACE_SELFTESTS = "tools/testing/selftests/ftrace"
# Everything of ours in the guest lives under /kto: "kernel test orchestrator", the
# prefix of the console markers too (KTO:READY/BEGIN/END, images/init, vm/console.py).
GUEST_ROOT = "/kto"
GUEST_FTRACE = f"{GUEST_ROOT}/ftrace"
GUEST_TCSCRIPTS = f"{GUEST_ROOT}/tcscripts"
IMAGE_RECIPE = "4"  # bump when the layout below changes


@dataclasses.dataclass
class ImageResult:
    path: pathlib.Path
    key: str
    size: int
    reused: bool
    busybox: str   # the busybox, shell and awk the image holds, each with its digest
    # Guest programs that did not build, with the compiler's error: the image goes without
    # them, and the cases of the suites they run are ERROR with it (the others still run).
    program_errors: dict[str, str] = dataclasses.field(default_factory=dict)


def _tree_files(top: pathlib.Path) -> list[pathlib.Path]:
    """The regular files under `top` (what goes into the image, and its key). Anything else
    is refused: a series can add a FIFO or a symlink to /dev/zero under test.d, and reading
    it would hang the build of every run on the machine (it happens under the cache lock)."""
    files = []
    inside = top.resolve()
    for root, dirs, names in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d not in ("logs", "__pycache__"))
        for name in sorted(names):
            path = pathlib.Path(root, name)
            try:
                regular = stat.S_ISREG(path.stat().st_mode)   # a symlink: what it points to
            except OSError:
                regular = False
            # A symlink out of the directory would put a host file into the guest.
            if not regular or (path.is_symlink() and not path.resolve().is_relative_to(inside)):
                what = "a symlink to " + os.readlink(path) if path.is_symlink() else "not a regular file"
                raise OrchestratorError(
                    f"{path} is {what}; the guest image takes regular files only: make it a file "
                    "or remove it from the tree (or the series that adds it).")
            files.append(path)
    return files


def _guest_mode(path: pathlib.Path) -> int:
    """A file's mode in the guest: executable or not, as on the host."""
    return 0o755 if os.access(path, os.X_OK) else 0o644


def _add_tree(cpio: CpioWriter, src: pathlib.Path, dest: str) -> None:
    for root, dirs, names in os.walk(src):
        dirs[:] = sorted(d for d in dirs if d not in ("logs", "__pycache__"))
        rel = os.path.relpath(root, src)
        target = dest if rel == "." else f"{dest}/{rel}"
        if not cpio.has(target):
            cpio.directory(target)
        for name in sorted(names):
            p = pathlib.Path(root, name)
            if p.is_symlink():
                cpio.symlink(f"{target}/{name}", os.readlink(p))
            elif p.is_file():
                cpio.file(f"{target}/{name}", p.read_bytes(), _guest_mode(p))


def build_image(tree: KernelTree, arch: Arch, cache_root: pathlib.Path,
                modules: pathlib.Path | None = None, programs: tuple[str, ...] = (),
                say=print, tcscripts: pathlib.Path = TCSCRIPTS_DIR, with_sshd: bool = False) -> ImageResult:
    """modules: a modules_install tree (.../lib/modules) to ship, for tests that modprobe;
    programs: the guest programs (guestprog.PROGRAM_SOURCES) the suites run;
    tcscripts: the directory of .tc cases shipped as the tcscripts suite;
    with_sshd: ship the static dropbear the SSH transport starts (guest/dropbear.py)."""
    busybox_path = busybox.busybox_for(arch, cache_root, say)
    shell_path = busybox.shell_for(arch, cache_root, say)
    awk_path = gawk.gawk_for(arch, cache_root, say)
    binaries: dict[str, pathlib.Path] = {}
    program_errors: dict[str, str] = {}
    for name in programs:
        try:
            binaries[name] = guestprog.build_program(name, tree, arch, cache_root, say)
        except guestprog.ProgramBuildFailed as exc:
            program_errors[name] = exc.message
            say(f"image: the {name} guest program is left out (its suite's cases will be ERROR): {exc.message}")
    if with_sshd:
        binaries[pathlib.PurePath(dropbear.GUEST_PATH).name] = dropbear.dropbear_for(arch, cache_root, say)
    ftrace_dir = tree.path / FTRACE_SELFTESTS
    if not (ftrace_dir / "ftracetest").is_file():
        raise OrchestratorError(
            f"The kernel tree {tree.path} has no {FTRACE_SELFTESTS}/ftracetest; use a tree "
            "that ships the ftrace selftests (Linux 4.1 or newer).")
    inputs = [busybox_path, shell_path, awk_path, *_tree_files(IMAGES_DIR), *_tree_files(ftrace_dir),
              *_tree_files(tcscripts),
              *(_tree_files(modules) if modules else []), *binaries.values()]
    # With each file's mode as the image gives it (_guest_mode) and where a link points:
    # a `chmod +x` or a re-pointed link is another image.
    digests = {p: cache.file_digest(p) for p in inputs}
    key = cache.digest(IMAGE_RECIPE, arch.name, *(f"{p}\0{digests[p]}\0{_guest_mode(p):o}"
                                                  + (f"\0{os.readlink(p)}" if p.is_symlink() else "")
                                                  for p in inputs))
    out = cache_root / "images" / f"{arch.name}-{key[:16]}.cpio"
    # What results.json records of the guest's userland: each binary and its digest.
    userland = "; ".join(f"{path} sha256:{digests[path][:16]}" for path in (busybox_path, shell_path, awk_path))
    if out.exists():
        return ImageResult(out, key, out.stat().st_size, True, userland, program_errors)

    cpio = CpioWriter()
    for d in ("bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp",
              "root", "etc", GUEST_ROOT):
        cpio.directory(d)
    # The console node must exist before devtmpfs is mounted, or init has no stdout.
    cpio.char_device("dev/console", 5, 1)
    # Both real files: ftracetest's uprobe case probes the file /bin/sh resolves to.
    cpio.file("bin/sh", shell_path.read_bytes(), 0o755)
    cpio.file("bin/busybox", busybox_path.read_bytes(), 0o755)
    cpio.file(gawk.GUEST_PATH, awk_path.read_bytes(), 0o755)
    cpio.file("init", (IMAGES_DIR / "init").read_bytes(), 0o755)
    cpio.file(f"{GUEST_ROOT}/run-case", (IMAGES_DIR / "run-case").read_bytes(), 0o755)
    if binaries:
        cpio.directory(guestprog.GUEST_BIN)
    for name, path in binaries.items():
        if name not in guestprog.TREE_PROGRAMS:
            cpio.file(guestprog.ON_PATH.get(name, f"{guestprog.GUEST_BIN}/{name}"), path.read_bytes(), 0o755)
    # A second user and group: 00basic/mount_options.tc and test_ownership.tc remount
    # tracefs with gid=/uid= of one that is not root's.
    cpio.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    cpio.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    _add_tree(cpio, ftrace_dir, GUEST_FTRACE)
    for name, (_, beside) in guestprog.TREE_PROGRAMS.items():
        if name in binaries:   # where the tree's selftests look for it
            cpio.file(f"{GUEST_FTRACE}/{beside}", binaries[name].read_bytes(), 0o755)
    if tcscripts.is_dir():
        _add_tree(cpio, tcscripts, GUEST_TCSCRIPTS)
    if modules:
        cpio.directory("lib")
        _add_tree(cpio, modules, "lib/modules")
    cache.atomic_write(out, cpio.finish())
    return ImageResult(out, key, out.stat().st_size, False, userland, program_errors)
