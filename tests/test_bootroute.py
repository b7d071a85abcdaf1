"""The built-in boot route (loongarch64 on QEMU 7.2): the initramfs linked into the
kernel carries the build's modules, and a rebuild finds the dir as the last build left it.
The kernel build itself is in the e2e run; here the files the route keeps in the build dir."""
from __future__ import annotations

import pathlib

from orchestrator import cache
from orchestrator.arches import get_arch
from orchestrator.guest import bootroute
from orchestrator.kernel.source import KernelTree


def _tree(tmp_path: pathlib.Path) -> KernelTree:
    src = tmp_path / "linux"
    (src / "scripts").mkdir(parents=True)
    (src / "scripts" / "Makefile.vmlinux").write_text("# no builtin-dtbs: an older tree\n")
    return KernelTree(src, "git:0", "6.12.0", "test", None)


def test_the_initramfs_linked_in_is_the_one_with_the_builds_modules(tmp_path):
    arch = get_arch("loongarch64", "debian")
    assert arch.boot_route == "builtin"
    tree, build_dir = _tree(tmp_path), tmp_path / "build"
    without, with_modules = tmp_path / "base.cpio", tmp_path / "modules.cpio"
    without.write_bytes(b"image without modules")
    with_modules.write_bytes(b"image without modules + lib/modules/7.2.12+/kernel/...ko")

    route = bootroute.prepare(arch, tree, build_dir, without, "console=ttyS0")
    linked = build_dir / bootroute.INITRAMFS_NAME
    assert route.config["CONFIG_INITRAMFS_SOURCE"] == f'"{linked}"'
    assert linked.read_bytes() == without.read_bytes()     # the first link takes this one
    # Once the modules are built: the image with them replaces it (the kernel is linked again).
    bootroute.relink(route, with_modules)
    assert linked.read_bytes() == with_modules.read_bytes()

    # The next run, same image without modules: the build's key is the same, and the image
    # with the modules stays where the kernel links it from (no relink of an unchanged build).
    again = bootroute.prepare(arch, tree, build_dir, without, "console=ttyS0")
    assert again.digest == route.digest
    assert linked.read_bytes() == with_modules.read_bytes()

    # A new image without modules (a case added, a new shell): a new key, and the kernel's
    # first link takes the new image until the build's modules are added to it again.
    without.write_bytes(b"image without modules, one case more")
    changed = bootroute.prepare(arch, tree, build_dir, without, "console=ttyS0")
    assert changed.digest != route.digest
    assert linked.read_bytes() == without.read_bytes()
    assert cache.file_digest(linked) == changed.base_digest

    # A kernel built without modules links the image without them.
    bootroute.relink(changed, None)
    assert linked.read_bytes() == without.read_bytes()

    # The image with modules lost from the build dir: the one without them is put back.
    linked.unlink()
    bootroute.prepare(arch, tree, build_dir, without, "console=ttyS0")
    assert linked.read_bytes() == without.read_bytes()
