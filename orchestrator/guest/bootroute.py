"""Boot plumbing for machines QEMU cannot direct-boot as they are.

Route "builtin": the device tree (with the command line in /chosen) and the initramfs
are built into the kernel, for QEMU 7.2's loongarch64 virt machine, which passes a
6.12 kernel neither an FDT nor an EFI table (traced with -d in_asm: the kernel panics
in unflatten_device_tree with no memory map, before the console). Only boot plumbing changes:
three config options and one generated .dts; the tracing code under test does not.

The initramfs is linked from a fixed path in the build dir, so re-packing it relinks
vmlinux (usr/initramfs_data.o) instead of rebuilding the kernel. That is how the modules
get in: the kernel is built and linked with the image without them, then linked again
with the image that holds its modules_install tree (relink()).
"""
from __future__ import annotations

import dataclasses
import pathlib
import re
import shutil
import subprocess

from .. import cache, hosttools
from ..arches import Arch, BuiltinDtbSpec
from ..errors import ExitCode, OrchestratorError
from ..project import IMAGES_DIR
from ..kernel.source import KernelTree

DTS_NAME = "orchestrator-qemu-virt"
INITRAMFS_NAME = "orchestrator-initramfs.cpio"


@dataclasses.dataclass(frozen=True)
class BuiltinBoot:
    config: dict[str, str]        # kconfig options the route adds
    digest: str                   # changes when the DTB or the initramfs without modules does
    description: str
    initramfs: pathlib.Path       # in the build dir, where CONFIG_INITRAMFS_SOURCE names it
    base: pathlib.Path            # the image without modules it is made from
    base_digest: str


def memory_bytes(text: str) -> int:
    m = re.fullmatch(r"(\d+)([KMGT]?)", text.strip().upper())
    if not m:
        raise OrchestratorError(f"QEMU memory size '{text}' is not understood; write it like 1G or 1024M "
                                "in the arch table.")
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2)]


def _cells(start: int, size: int) -> str:
    """A (start, size) pair as #address-cells = #size-cells = 2 write it."""
    return " ".join(f"0x{v >> 32:x} 0x{v & 0xffffffff:08x}" for v in (start, size))


def render_dts(template: str, layout: BuiltinDtbSpec, memory: str, bootargs: str) -> str:
    """The template with the memory node for -m (the arch table's RAM layout) and the
    command line in /chosen."""
    high = memory_bytes(memory) - layout.low_window
    if high <= 0:
        raise OrchestratorError(f"QEMU memory {memory} is too small for the {layout.template} layout; "
                                f"give more than {layout.low_window >> 20}M in the arch table.")
    low_start, low_end = layout.low_ram
    return (template.replace("{low_ram_cells}", _cells(low_start, low_end - low_start))
            .replace("{high_ram_cells}", _cells(layout.high_base, high))
            .replace("{bootargs}", bootargs.replace('"', "")))


def _generic_builtin_dtb(tree: KernelTree) -> bool:
    """Trees since the generic built-in DTB (6.13+; 7.2 among them) link the DTB named by
    BUILTIN_DTB_NAME from the build dir, but build only the DTBs their dts Makefile lists:
    ours is not listed there, so it has to be in place before the build."""
    try:
        return "builtin-dtbs" in (tree.path / "scripts" / "Makefile.vmlinux").read_text()
    except OSError:
        return False


def _compile_dtb(dts: pathlib.Path, dtb: pathlib.Path) -> None:
    hosttools.require({"dtc": "device-tree-compiler"}, "the built-in device tree of this boot route")
    dtb.parent.mkdir(parents=True, exist_ok=True)
    tmp = dtb.with_name(dtb.name + ".partial")
    proc = subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", str(tmp), str(dts)],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise OrchestratorError(f"dtc could not compile {dts} ({proc.stderr.strip()[-200:]}); "
                                "the arch table's builtin_dtb template is at fault.", ExitCode.INFRA_ERROR)
    tmp.replace(dtb)


def prepare(arch: Arch, tree: KernelTree, build_dir: pathlib.Path, initramfs: pathlib.Path,
            bootargs: str) -> BuiltinBoot:
    """Write the DTS into the tree's arch/<srcarch>/boot/dts (the only place kbuild takes it
    from) and the initramfs into the build dir; return the options that build them in."""
    assert arch.builtin_dtb is not None   # the table's check: "builtin" needs one
    template = (IMAGES_DIR / arch.builtin_dtb.template).read_text()
    dts = render_dts(template, arch.builtin_dtb, arch.qemu.memory, bootargs)
    dts_path = tree.source / "arch" / arch.srcarch / "boot" / "dts" / f"{DTS_NAME}.dts"
    if not dts_path.exists() or dts_path.read_text() != dts:
        cache.atomic_write(dts_path, dts)
    build_dir.mkdir(parents=True, exist_ok=True)
    if _generic_builtin_dtb(tree):
        _compile_dtb(dts_path, build_dir / "arch" / arch.srcarch / "boot" / "dts" / f"{DTS_NAME}.dtb")
    target = build_dir / INITRAMFS_NAME
    base_digest = cache.file_digest(initramfs)
    # The image with the modules of this dir's last build, made from the same image without
    # them, stays: it is what the kernel there holds (a reused build is not linked again).
    if not target.exists() or _file_text(_base_record(target)) != base_digest:
        _install(initramfs, target)
        _base_record(target).unlink(missing_ok=True)
    return BuiltinBoot(
        config={"CONFIG_BUILTIN_DTB": "y", "CONFIG_BUILTIN_DTB_NAME": f'"{DTS_NAME}"',
                "CONFIG_INITRAMFS_SOURCE": f'"{target}"'},
        digest=cache.digest(dts, base_digest),
        description=f"built-in DTB {dts_path.name} (memory {arch.qemu.memory}) and built-in initramfs",
        initramfs=target, base=initramfs, base_digest=base_digest)


def relink(route: BuiltinBoot, with_modules: pathlib.Path | None) -> None:
    """Put the image with the build's modules (None: a kernel without modules, the image
    without them) where the kernel links its initramfs from, before it is linked again."""
    _install(with_modules or route.base, route.initramfs)
    cache.atomic_write(_base_record(route.initramfs), route.base_digest)


def _base_record(target: pathlib.Path) -> pathlib.Path:
    """Names the image without modules that the one at target was made from."""
    return target.with_name(target.name + ".base")


def _file_text(path: pathlib.Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _install(src: pathlib.Path, target: pathlib.Path) -> None:
    if target.exists() and cache.file_digest(target) == cache.file_digest(src):
        return
    tmp = target.with_name(target.name + ".partial")
    shutil.copyfile(src, tmp)
    tmp.replace(target)
