"""loongarch64 on QEMU 10.0 (QEMU=backports): direct boot with the device tree QEMU
generates, nothing written into the kernel tree, modules in the initramfs, la464's LSX
and LASX for user space (the guest's busybox is built for la464), over SSH.

It needs the loongarch64 toolchain (clang/lld 19, `make deps ARCH=loongarch64`) and builds
that kernel (about 8 minutes cold on 2 cores), so it runs only where that toolchain is
installed: CI's `make check` installs x86_64's alone and skips it."""
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from conftest import CACHE_ROOT, git

REPO = pathlib.Path(__file__).resolve().parent.parent
SIMD_TC = REPO / "tests" / "faults" / "tc_simd"
pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("clang-19") is None,
                                 reason="no loongarch64 toolchain (clang-19): `make deps ARCH=loongarch64`")]


def test_loongarch64_direct_boot_leaves_the_tree_alone(tmp_path):
    deps = subprocess.run([sys.executable, "-m", "orchestrator", "deps", "--arch", "loongarch64", "--qemu",
                           "backports", "--cache-dir", str(CACHE_ROOT)], cwd=REPO, capture_output=True, text=True)
    assert deps.returncode == 0, deps.stdout[-2000:] + deps.stderr[-2000:]
    from orchestrator.kernel import source
    tree = source.builtin_tree("7.2", CACHE_ROOT, say=lambda *_: None)
    before = git(tree.path, "status", "--porcelain", "--untracked-files=all")
    p = subprocess.run([sys.executable, "-m", "orchestrator", "test", "--arch", "loongarch64", "--qemu", "backports",
                        "--kernel", "7.2", "--suite", "kprobe_multi,dynevent,tcscripts", "--tcdir", str(SIMD_TC),
                        "--transport", "ssh", "--results-dir", str(tmp_path),
                        "--cache-dir", str(CACHE_ROOT)], cwd=REPO, capture_output=True, text=True, timeout=3600)
    data = json.loads((tmp_path / "latest" / "results.json").read_text())
    assert data["state"] == "complete", p.stderr[-3000:]
    assert data["boot_route"]["name"] == "direct"
    assert data["versions"]["qemu"].startswith("QEMU emulator version 10.0")
    assert "-append" in data["qemu_argv"] and "-initrd" in data["qemu_argv"]
    config = (tmp_path / "latest" / "config").read_text()
    assert "CONFIG_BUILTIN_DTB=y" not in config and 'CONFIG_INITRAMFS_SOURCE=""' in config
    assert git(tree.path, "status", "--porcelain", "--untracked-files=all") == before
    status = {c["id"]: c["status"] for c in data["cases"]}
    # Module cases have their modules (on QEMU 7.2's built-in route too, since 2026-12-07).
    assert status["dynevent/add_remove_fprobe_module.tc"] != "UNRESOLVED", status
    assert status["kprobe_multi/attach_by_symbol"] == "PASS", status
    assert status["tcscripts/cpu_simd.tc"] == "PASS", status
    # Cases that end UNSUPPORTED end at once (with forky's busybox they never returned),
    # and awk reads the entry point (the zig build's awk stored to address 4 before
    # busybox.SOURCE_FIXES).
    assert status["dynevent/add_remove_synth.tc"] == "UNSUPPORTED", status
    assert status["dynevent/add_remove_uprobe.tc"] == "PASS", status
    assert data["transport"]["name"] == "ssh" and data["transport"]["connects"] >= 1


@pytest.mark.skipif(shutil.which("qemu-system-loongarch64") is None,
                    reason="no QEMU 7.2 for loongarch64 (Debian's qemu-system-misc)")
def test_loongarch64_on_qemu_7_2_links_its_modules_into_the_kernel(tmp_path):
    """QEMU 7.2's built-in route: the DTB and the initramfs linked into the kernel, the
    initramfs with the kernel's own modules (linked again once they are built)."""
    p = subprocess.run([sys.executable, "-m", "orchestrator", "test", "--arch", "loongarch64", "--qemu", "debian",
                        "--kernel", "7.2", "--suite", "kprobe,dynevent", "--case", "*module*",
                        "--results-dir", str(tmp_path), "--cache-dir", str(CACHE_ROOT)],
                       cwd=REPO, capture_output=True, text=True, timeout=3600)
    data = json.loads((tmp_path / "latest" / "results.json").read_text())
    assert data["state"] == "complete", p.stderr[-3000:]
    assert data["boot_route"]["name"] == "builtin"
    assert "-initrd" not in data["qemu_argv"]
    status = {c["id"]: c["status"] for c in data["cases"]}
    assert status == {"kprobe/kprobe_module.tc": "PASS", "dynevent/add_remove_fprobe_module.tc": "PASS",
                      "dynevent/add_remove_tprobe_module.tc": "PASS"}, status
