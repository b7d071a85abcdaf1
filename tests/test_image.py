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


def test_the_image_takes_regular_files_only(tmp_path):
    # What a series can add under test.d: a FIFO, a symlink to /dev/zero, a symlink out
    # of the tree. Each is refused at once (reading one would hang under the cache lock).
    import os
    import time
    import pytest
    from orchestrator.errors import OrchestratorError
    from orchestrator.guest.image import _tree_files
    top = tmp_path / "ftrace" / "test.d" / "dynevent"
    top.mkdir(parents=True)
    (top / "ok.tc").write_text("#!/bin/sh\n")
    (top / "twin.tc").symlink_to("ok.tc")
    assert [p.name for p in _tree_files(tmp_path / "ftrace")] == ["ok.tc", "twin.tc"]
    for make, said in ((lambda p: os.mkfifo(p), "is not a regular file"),
                       (lambda p: p.symlink_to("/dev/zero"), "is a symlink to /dev/zero"),
                       (lambda p: p.symlink_to("/etc/hostname"), "is a symlink to /etc/hostname")):
        bad = top / "zz.tc"
        make(bad)
        t0 = time.monotonic()
        with pytest.raises(OrchestratorError) as exc:
            _tree_files(tmp_path / "ftrace")
        assert time.monotonic() - t0 < 5
        assert f"{bad} {said}; the guest image takes regular files only" in exc.value.message
        bad.unlink()


def test_a_lock_held_too_long_ends_the_wait_with_the_holder(tmp_path):
    import fcntl
    import os
    import pytest
    from orchestrator import cache
    from orchestrator.errors import OrchestratorError
    lock = tmp_path / "locks" / "prepare.lock"
    said = []
    with cache.file_lock(lock, "kernel builds"):
        with open(lock) as other:          # another open file: flock conflicts with it
            assert other.read() == str(os.getpid())
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(OrchestratorError) as exc:
            with cache.file_lock(lock, "kernel builds", on_wait=said.append, timeout=1.5):
                pass
    assert f"Another run (pid {os.getpid()}) has held the lock on kernel builds" in exc.value.message
    assert said == [f"waiting for another run (pid {os.getpid()}) that holds the lock on kernel builds"]
    with cache.file_lock(lock, "kernel builds", timeout=1.5):   # released: taken at once
        pass
