"""Boot plumbing for machines QEMU cannot direct-boot as they are.

Route "builtin": the device tree (with the command line in /chosen) and the initramfs
are built into the kernel, for QEMU 7.2's loongarch64 virt machine, which passes a
6.12 kernel neither an FDT nor an EFI table (traced with -d in_asm: the kernel panics
in unflatten_device_tree with no memory map, before the console). Only boot plumbing changes:
three config options and one generated .dts; the tracing code under test does not.

The initramfs is linked from a fixed path in the build dir, so re-packing it relinks
vmlinux (usr/initramfs_data.o) instead of rebuilding the kernel.
"""
from __future__ import annotations

import dataclasses
import pathlib
import re
import shutil

from .. import cache
from ..arches import Arch
from ..errors import OrchestratorError
from ..project import IMAGES_DIR
from ..kernel.source import KernelTree

DTS_NAME = "orchestrator-qemu-virt"
INITRAMFS_NAME = "orchestrator-initramfs.cpio"
# QEMU's loongarch virt machine maps RAM at 0x200000-0xf000000 (low) and from
# 0x90000000 (high); the high part holds what -m gives beyond the low 256 MiB.
_LOW_RAM = 0x10000000
_HIGH_BASE = 0x90000000


@dataclasses.dataclass(frozen=True)
class BuiltinBoot:
    config: dict[str, str]        # kconfig options the route adds
    digest: str                   # changes when the DTB or the initramfs does
    description: str


def memory_bytes(text: str) -> int:
    m = re.fullmatch(r"(\d+)([KMGT]?)", text.strip().upper())
    if not m:
        raise OrchestratorError(f"QEMU memory size '{text}' is not understood; write it like 1G or 1024M "
                                "in the arch table.")
    return int(m.group(1)) * {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2)]


def render_dts(template: str, memory: str, bootargs: str) -> str:
    high = memory_bytes(memory) - _LOW_RAM
    if high <= 0:
        raise OrchestratorError(f"QEMU memory {memory} is too small for the loongarch virt layout; "
                                "give at least 512M in the arch table.")
    cells = f"0x{high >> 32:x} 0x{high & 0xffffffff:08x}"
    return template.replace("{high_size_cells}", cells).replace("{bootargs}", bootargs.replace('"', ""))


def prepare(arch: Arch, tree: KernelTree, build_dir: pathlib.Path, initramfs: pathlib.Path,
            bootargs: str) -> BuiltinBoot:
    """Write the DTS into the tree's arch/<srcarch>/boot/dts (the only place kbuild takes it
    from) and the initramfs into the build dir; return the options that build them in."""
    template = (IMAGES_DIR / arch.builtin_dtb).read_text()
    dts = render_dts(template, arch.qemu.memory, bootargs)
    dts_path = tree.path / "arch" / arch.srcarch / "boot" / "dts" / f"{DTS_NAME}.dts"
    if not dts_path.exists() or dts_path.read_text() != dts:
        cache.atomic_write(dts_path, dts)
    build_dir.mkdir(parents=True, exist_ok=True)
    target = build_dir / INITRAMFS_NAME
    if not target.exists() or cache.file_digest(target) != cache.file_digest(initramfs):
        tmp = target.with_name(target.name + ".partial")
        shutil.copyfile(initramfs, tmp)
        tmp.replace(target)
    return BuiltinBoot(
        config={"CONFIG_BUILTIN_DTB": "y", "CONFIG_BUILTIN_DTB_NAME": f'"{DTS_NAME}"',
                "CONFIG_INITRAMFS_SOURCE": f'"{target}"'},
        digest=cache.digest(dts, cache.file_digest(target)),
        description=f"built-in DTB {dts_path.name} (memory {arch.qemu.memory}) and built-in initramfs")
