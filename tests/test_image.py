"""The initramfs writer, checked by the real cpio(1) and by the kernel's expectations."""
import subprocess

from orchestrator.guest.cpio import CpioWriter


def test_cpio_lists_and_extracts_with_gnu_cpio(tmp_path):
    w = CpioWriter()
    w.directory("bin")
    w.directory("dev")
    w.file("bin/sh", b"\x7fELF fake", 0o755)
    w.symlink("bin/busybox", "sh")
    w.char_device("dev/console", 5, 1)
    w.file("init", b"#!/bin/sh\n", 0o755)
    archive = tmp_path / "a.cpio"
    archive.write_bytes(w.finish())
    listing = subprocess.run(["cpio", "-itv", "-F", str(archive)], capture_output=True, text=True,
                             check=True).stdout.splitlines()
    names = {line.split()[-1] if "->" not in line else line.split()[-3]: line for line in listing}
    assert names["bin/sh"].startswith("-rwxr-xr-x")
    assert names["bin/busybox"].startswith("lrwxrwxrwx") and names["bin/busybox"].endswith("-> sh")
    assert names["dev/console"].startswith("crw-------")
    assert "5,   1" in names["dev/console"] or "5, 1" in names["dev/console"]
    out = tmp_path / "x"
    out.mkdir()
    subprocess.run(["cpio", "-id", "--no-absolute-filenames", "-F", str(archive), "--quiet",
                    "--nonmatching", "dev/console"], cwd=out, check=True)
    assert (out / "bin/sh").read_bytes() == b"\x7fELF fake"
    assert (out / "bin/busybox").is_symlink()


def test_entries_are_padded_to_four_bytes():
    w = CpioWriter()
    w.file("abc", b"12345")
    data = w.finish()
    assert len(data) % 4 == 0
    assert data.startswith(b"070701")
    assert data.rstrip(b"\0").endswith(b"TRAILER!!!")
