"""The guest's busybox where bookworm has none for the arch: Debian's own static binary
from the suite that has one (riscv64: trixie), downloaded through a private apt source
list, or (loongarch64) Debian's source built with zig; each checked by running it
(qemu-user) the way the tree's cases use it. The zig/musl build segfaulted in awk, so
dynevent/add_remove_uprobe.tc FAILed on both arches."""
from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

from orchestrator import cache
from orchestrator.arches import get_arch
from orchestrator.guest import busybox


def _host_apt_state() -> dict[str, str]:
    files = [p for p in pathlib.Path("/etc/apt").rglob("*") if p.is_file() and p.suffix in (".list", ".sources")]
    state = {str(p): p.read_text(errors="replace") for p in files}
    state["foreign"] = subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True,
                                      text=True).stdout
    return state


def _read_entry_point(qemu_user: str, busybox_path: pathlib.Path) -> subprocess.CompletedProcess:
    """The pipeline add_remove_uprobe.tc reads readelf's entry point with, in that busybox."""
    header = "ELF Header:\n  Entry point address:               0x1a2b4\n"
    return subprocess.run([qemu_user, str(busybox_path), "sh", "-c", "grep 'Entry point' | awk '{print $NF}'"],
                          input=header, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("qemu-riscv64") is None, reason="needs qemu-user (qemu-riscv64)")
def test_the_riscv64_guests_awk_reads_the_entry_point_as_the_uprobe_case_does():
    before = _host_apt_state()
    path = busybox.busybox_for(get_arch("riscv64"), cache.default_cache_root(), say=lambda *_: None)
    out = _read_entry_point("qemu-riscv64", path)
    assert (out.returncode, out.stdout) == (0, "0x1a2b4\n"), out.stderr
    # The case's arithmetic: printf's conversions of hex and decimal.
    out = subprocess.run(["qemu-riscv64", str(path), "sh", "-c", "printf '%d 0x%x\\n' 0x10 $((16 + 1))"],
                         capture_output=True, text=True, timeout=60)
    assert out.stdout == "16 0x11\n", out.stderr
    # Debian's riscv64 binary, not a build of ours; the host's apt sources and dpkg
    # architectures are as they were.
    head = path.read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 243   # EM_RISCV
    assert path.name == "busybox-trixie"
    assert _host_apt_state() == before


def _zig_installed() -> bool:
    import sys
    return subprocess.run([sys.executable, "-m", "ziglang", "version"], capture_output=True).returncode == 0


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("qemu-loongarch64") is None, reason="needs qemu-user (qemu-loongarch64)")
@pytest.mark.skipif(not _zig_installed(), reason="needs zig (`make deps TRANSPORT=ssh` installs it)")
def test_the_zig_built_loongarch64_busybox_awk_writes_its_globals_where_they_are():
    """loongarch64 has no Debian busybox that works here: its busybox is Debian's source
    built with zig. Its awk stored into address 4 until the one declaration busybox 1.35
    leaves `*const` went through BB_GLOBAL_CONST too. The row as written is QEMU 7.2's
    (-mcpu=generic_la64, no LSX), which qemu-user 7.2 runs (about 2 minutes to build)."""
    arch = get_arch("loongarch64")
    assert arch.busybox.zig_target and arch.busybox.zig_cpu == "generic_la64"
    path = busybox.busybox_for(arch, cache.default_cache_root(), say=lambda *_: None)
    out = _read_entry_point("qemu-loongarch64", path)
    assert (out.returncode, out.stdout) == (0, "0x1a2b4\n"), out.stderr
