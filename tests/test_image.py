"""The initramfs writer, checked by the real cpio(1) and by the kernel's expectations."""
import pathlib
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
    # Its holder is this process: the arches of one series run in threads (series/lanes.py).
    assert "Another arch of this run has held the lock on kernel builds" in exc.value.message
    assert said == ["waiting for another arch of this run that holds the lock on kernel builds"]
    with cache.file_lock(lock, "kernel builds", timeout=1.5):   # released: taken at once
        pass


def _cache_sharing_userland(tmp_path: pathlib.Path) -> pathlib.Path:
    """A cache of its own whose userland (the guest's shell and awk, built from source
    once per machine) is the machine's cache's."""
    from orchestrator import cache
    shared = cache.default_cache_root() / "userland"
    shared.mkdir(parents=True, exist_ok=True)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "userland").symlink_to(shared)
    return tmp_path / "cache"


def test_a_guest_program_that_does_not_build_costs_its_suite_only(tmp_path):
    # A tree whose nolibc the program cannot be built with (here: no kbuild to make its
    # headers with): the image is made without the program, and only the cases of the
    # suite it runs are ERROR, with the build's error.
    import shutil
    import pytest
    from orchestrator.arches import get_arch
    from orchestrator.guest import image
    from orchestrator.kernel.source import KernelTree
    from orchestrator.suites.runner import CaseSpec, not_built
    if not shutil.which("gcc") or not pathlib.Path("/bin/busybox").exists():
        pytest.skip("needs the x86_64 toolchain and busybox-static (make deps)")
    linux = tmp_path / "linux"
    for d in ("tools/include/nolibc", "tools/testing/selftests/ftrace/test.d/dynevent"):
        (linux / d).mkdir(parents=True)
    (linux / "tools/include/nolibc/nolibc.h").write_text("")
    (linux / "tools/testing/selftests/ftrace/ftracetest").write_text("#!/bin/sh\n")
    tree = KernelTree(linux, "plain:test", "6.99", "test", None)
    said = []
    img = image.build_image(tree, get_arch("x86_64"), _cache_sharing_userland(tmp_path), None, ("kprobe_multi",),
                            say=said.append)
    assert set(img.program_errors) == {"kprobe_multi"} and img.path.exists()
    assert any("kprobe_multi" in line for line in said)
    unbuilt = not_built(CaseSpec("kprobe_multi/cookies", "kprobe_multi", "/kto/bin/kprobe_multi"), img.program_errors)
    assert unbuilt.status == "ERROR" and unbuilt.reason.startswith("not run: ")
    assert "`make headers` for x86_64 failed" in unbuilt.reason
    assert not_built(CaseSpec("dynevent/x.tc", "dynevent", "/kto/ftrace/test.d/dynevent/x.tc"), img.program_errors) is None


def test_a_case_made_executable_is_a_new_image(tmp_path):
    """The image gives each file its mode: `chmod +x` of a case (or a re-pointed link)
    must not reuse the image made before it."""
    import os
    import pytest
    from orchestrator.arches import get_arch
    from orchestrator.guest import image
    from orchestrator.kernel.source import KernelTree
    if not pathlib.Path("/bin/busybox").exists():
        pytest.skip("needs busybox-static (make deps)")
    linux = tmp_path / "linux"
    cases = linux / "tools/testing/selftests/ftrace/test.d/dynevent"
    cases.mkdir(parents=True)
    (linux / "tools/testing/selftests/ftrace/ftracetest").write_text("#!/bin/sh\n")
    (cases / "a.tc").write_text("#!/bin/sh\n")
    (cases / "c.tc").write_text("#!/bin/sh\n")
    (cases / "b.tc").symlink_to("a.tc")
    tree = KernelTree(linux, "plain:test", "6.99", "test", None)

    def build():
        return image.build_image(tree, get_arch("x86_64"), cache_root, None, (), say=lambda m: None)
    cache_root = _cache_sharing_userland(tmp_path)
    first = build()
    assert build().path == first.path                 # nothing changed: the same image
    # What results.json records of the userland: the busybox, the shell and awk, each hashed.
    assert first.busybox.count(" sha256:") == 3 and "/sh-" in first.busybox and "/gawk-" in first.busybox
    os.chmod(cases / "a.tc", 0o755)
    second = build()
    assert second.path != first.path and not second.reused
    (cases / "b.tc").unlink()
    (cases / "b.tc").symlink_to("c.tc")               # the same bytes behind it, another target
    assert build().path != second.path
