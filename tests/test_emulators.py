"""QEMU builds side by side (vm/emulators.py): the arch table's `on_qemu` rows, the binary
and firmware of a build unpacked in the cache, the sentence when it is not there, the
bookworm-backports sources entry, and the libraries a downloaded .deb asks for."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from orchestrator import arches
from orchestrator.errors import ExitCode, OrchestratorError
from orchestrator.vm import emulators


def test_on_qemu_rows_change_only_their_build():
    base, on10 = arches.get_arch("riscv64"), arches.get_arch("riscv64", "backports")
    assert base.qemu.package == "qemu-system-misc" and on10.qemu.package == "qemu-system-riscv"
    # Field by field: the rest of the qemu mapping is the row's.
    assert (on10.qemu.machine, on10.qemu.cpu, on10.qemu.bios) == (base.qemu.machine, base.qemu.cpu, base.qemu.bios)
    assert arches.get_arch("x86_64", "backports") == arches.get_arch("x86_64")
    # A build with no rows at all is the table as written.
    assert arches.get_arch("s390x", "no-such-build") == arches.get_arch("s390x")


def test_every_on_qemu_key_is_a_known_build():
    for name, row in arches._rows().items():
        for build in row.get("on_qemu") or {}:
            assert build in emulators.EMULATORS, f"{name}: on_qemu names unknown build {build}"


def test_a_build_not_on_the_host_runs_from_the_cache(tmp_path):
    arch = arches.get_arch("riscv64", "backports")
    emu = emulators.get("backports")
    if emulators.on_host(emu, arch):
        pytest.skip("this host has QEMU 10.0 installed")
    got = emulators.apply(arch, "backports", tmp_path)
    root = tmp_path / "qemu" / "backports-10.0" / "root"
    assert got.qemu.binary == str(root / "usr/bin/qemu-system-riscv64")
    assert got.qemu.bios == str(root / "usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.bin")
    assert got.qemu.extra_args[:4] == ("-L", str(root / "usr/share/qemu"), "-L", str(root / "usr/share/seabios"))
    with pytest.raises(OrchestratorError) as exc:
        emulators.require(got, "backports")
    assert exc.value.code == ExitCode.MISSING_HOST_TOOL
    assert "make deps ARCH=riscv64 QEMU=backports" in exc.value.message


def test_the_installed_build_is_used_as_it_is(tmp_path):
    arch = arches.get_arch("x86_64")
    if not emulators.on_host(emulators.get("debian"), arch):
        pytest.skip("this host's qemu-system-x86_64 is not Debian 12's 7.2")
    assert emulators.apply(arch, "debian", tmp_path) is arch


def test_unknown_build_is_one_sentence():
    with pytest.raises(OrchestratorError) as exc:
        emulators.get("qemu11")
    assert exc.value.code == ExitCode.BAD_INPUT and "backports (10.0, bookworm-backports)" in exc.value.message


def test_backports_entry_written_once(tmp_path):
    sources = tmp_path / "sources.list.d"
    sources.mkdir()
    (sources / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n")
    said: list[str] = []
    emu = emulators.get("backports")
    assert emulators.ensure_sources(emu, said.append, sources) is True
    text = (sources / "bookworm-backports.sources").read_text()
    assert "Suites: bookworm-backports\n" in text and "Pin" not in text
    assert emulators.ensure_sources(emu, said.append, sources) is False
    assert said == [f"deps: writing {sources / 'bookworm-backports.sources'}"]
    # Debian's own build needs no entry.
    assert emulators.ensure_sources(emulators.get("debian"), said.append, tmp_path / "none") is False


def test_an_existing_one_line_backports_source_is_enough(tmp_path):
    sources = tmp_path / "sources.list.d"
    sources.mkdir()
    (sources / "backports.list").write_text("deb http://deb.debian.org/debian bookworm-backports main\n")
    assert emulators.ensure_sources(emulators.get("backports"), lambda _: None, sources) is False
    assert not (sources / "bookworm-backports.sources").exists()


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_library_depends_of_a_deb(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "DEBIAN").mkdir(parents=True)
    (pkg / "DEBIAN" / "control").write_text(
        "Package: qemu-system-demo\nVersion: 1:10.0.2\nArchitecture: all\nMaintainer: none <none@invalid>\n"
        "Description: demo\nDepends: libaio1 (>= 0.3.93), libslirp0 (>= 4.7.0) | libslirp-alt, "
        "qemu-system-common (= 1:10.0.2), qemu-system-data (>> 1:10.0.2+ds~), seabios (>> 1.16.3-1~), ipxe-qemu\n")
    deb = tmp_path / "demo.deb"
    subprocess.run(["dpkg-deb", "-b", str(pkg), str(deb)], check=True, capture_output=True)
    assert emulators._library_depends(deb) == ["libaio1", "libslirp0"]
