"""The guest's userland: its busybox where bookworm has none for the arch (Debian's own
static binary from the suite that has one, riscv64: trixie, downloaded through a private
apt source list, or, loongarch64, Debian's source built with zig), its shell and its awk;
each checked by running it (natively, or under qemu-user) the way the tree's cases use
it. The zig/musl busybox segfaulted in awk, so dynevent/add_remove_uprobe.tc FAILed on
both arches; Debian's busybox-static as the shell ran `ping` as "exe", so 7.2's
trigger-synthetic-event-dynstring.tc FAILed; busybox's awk has no strtonum(), so
00basic/trace_marker_raw.tc was UNRESOLVED."""
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
@pytest.mark.skipif(not _zig_installed(), reason="needs zig (`make deps` installs it)")
def test_the_zig_built_loongarch64_busybox_awk_writes_its_globals_where_they_are():
    """loongarch64 has no Debian busybox that works here: its busybox is Debian's source
    built with zig. Its awk stored into address 4 until the one declaration busybox 1.35
    leaves `*const` went through BB_GLOBAL_CONST too. The row as written is QEMU 7.2's
    (-mcpu=generic_la64, no LSX), which qemu-user 7.2 runs (about 2 minutes to build)."""
    arch = get_arch("loongarch64")
    assert arch.busybox.from_source and arch.zig.cpu == "generic_la64"
    path = busybox.busybox_for(arch, cache.default_cache_root(), say=lambda *_: None)
    out = _read_entry_point("qemu-loongarch64", path)
    assert (out.returncode, out.stdout) == (0, "0x1a2b4\n"), out.stderr


@pytest.mark.skipif(not _zig_installed(), reason="needs zig (`make deps` installs it)")
def test_the_guests_shell_runs_a_command_from_path_under_the_commands_own_name(tmp_path):
    """dynstring keys its histogram on the exit of a task whose comm is "ping" and the
    exec of a file named ping. busybox-static's standalone shell ran its ping applet by
    re-executing /proc/self/exe (comm "exe"); the guest's /bin/sh runs what PATH holds."""
    shell = busybox.shell_for(get_arch("x86_64"), cache.default_cache_root(), say=lambda *_: None)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sh").symlink_to(shell)          # a multi-call binary: it answers to "sh"
    (bin_dir / "ping").symlink_to(shutil.which("cat"))

    def sh(command: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(bin_dir / "sh"), "-c", command], env={"PATH": str(bin_dir)},
                              capture_output=True, text=True, timeout=60)
    out = sh("ping /proc/self/comm; echo $((6 * 7))")
    assert (out.returncode, out.stdout) == (0, "ping\n42\n"), out.stderr
    # The builtins as Debian's busybox has them: trace_marker.tc writes with `echo -n`,
    # trace_marker_raw.tc expects a short write to fail, and the shell to say so.
    out = sh("echo -n abc; printf '%d-%x' 0x10 17; [ 2 -lt 10 ] && echo")
    assert (out.returncode, out.stdout) == (0, "abc16-11\n"), out.stderr
    out = sh("echo -n abc > /dev/full")
    assert out.returncode == 1 and "write error" in out.stderr
    # Only the shell is built: no other applet to prefer over PATH.
    out = sh("grep x /dev/null")
    assert out.returncode == 127 and "grep: not found" in out.stderr


@pytest.mark.skipif(not _zig_installed(), reason="needs zig (`make deps` installs it)")
def test_the_guests_awk_reads_trace_marker_raw_records_as_the_case_does(tmp_path):
    """trace_marker_raw.tc checks for strtonum() first (UNRESOLVED without it), then counts
    each raw record's bytes with it: the case's own awk program on a record of id 5 with
    eight data bytes, then on one whose count is off."""
    from orchestrator.guest import gawk
    awk = gawk.gawk_for(get_arch("x86_64"), cache.default_cache_root(), say=lambda *_: None)
    check = subprocess.run([str(awk), 'BEGIN{strtonum("0x1")}'], capture_output=True, timeout=60)
    assert check.returncode == 0, check.stderr
    program = """/.*: # [0-9a-f]* / { cnt = -1; for (i = 0; i < NF; i++) { if ( $i == "#" ) { i++;
        cnt = strtonum("0x" $i); num = NF - (i + 1); cnt2 = int((cnt + 3) / 4) * 4;
        if (cnt2 != num) { exit 1; } break; } } } // { if (NR > 30) { exit 0; } }"""
    # As the kernel prints a raw record (trace_output.c: "# %x buf:", then " %02x" a byte).
    record = "  <...>-96  [001] .....  29.1: # 5 buf: 58 58 58 58 58 00 00 00\n"
    assert subprocess.run([str(awk), program], input=record, text=True, timeout=60).returncode == 0
    short = "  <...>-96  [001] .....  29.1: # 5 buf: 58 58 58 58\n"
    assert subprocess.run([str(awk), program], input=short, text=True, timeout=60).returncode == 1
    head = awk.read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 62   # EM_X86_64, static


@pytest.mark.skipif(not _zig_installed(), reason="needs zig (`make deps` installs it)")
def test_the_riscv64_shell_has_no_compressed_instructions_for_the_uprobe_case_to_probe():
    """The riscv64 kernel is built without RISCV_ISA_C, so a uprobe must sit on a 4-byte
    boundary; add_remove_uprobe.tc probes /bin/sh's entry point, which zig's default
    rv64gc build put 2 bytes past one (EINVAL on enable). The row's zig cpu drops C and Zca."""
    import struct
    shell = busybox.shell_for(get_arch("riscv64"), cache.default_cache_root(), say=lambda *_: None)
    header = shell.read_bytes()[:64]
    machine, = struct.unpack_from("<H", header, 18)
    entry, = struct.unpack_from("<Q", header, 24)
    flags, = struct.unpack_from("<I", header, 48)
    assert machine == 243                  # EM_RISCV
    assert entry % 4 == 0, hex(entry)
    assert flags & 0x1 == 0                # EF_RISCV_RVC: no compressed instructions


@pytest.mark.e2e
@pytest.mark.parametrize("arch_name, qemu_user", [("s390x", "qemu-s390x"), ("loongarch64", "qemu-loongarch64")])
@pytest.mark.skipif(not _zig_installed(), reason="needs zig (`make deps` installs it)")
def test_the_guests_shell_and_awk_run_on_arches_not_booted_here(tmp_path, arch_name, qemu_user):
    """The shell and gawk recipes for a big-endian arch and for loongarch64 (its QEMU 7.2 row,
    no LSX), run under qemu-user: the builtins the cases lean on and awk's strtonum()
    (about a minute to build each arch's pair, once)."""
    from orchestrator.guest import gawk
    if shutil.which(qemu_user) is None:
        pytest.skip(f"needs qemu-user ({qemu_user})")
    arch = get_arch(arch_name)
    root = cache.default_cache_root()
    (tmp_path / "sh").symlink_to(busybox.shell_for(arch, root, say=lambda *_: None))
    out = subprocess.run([qemu_user, str(tmp_path / "sh"), "-c", "echo -n ok; printf ' %d-%x ' 0x10 17; echo $((6*7))"],
                         capture_output=True, text=True, timeout=120)
    assert (out.returncode, out.stdout) == (0, "ok 16-11 42\n"), out.stderr
    awk = gawk.gawk_for(arch, root, say=lambda *_: None)
    out = subprocess.run([qemu_user, str(awk), 'BEGIN{print strtonum("0x1f")}'], capture_output=True, text=True,
                         timeout=120)
    assert (out.returncode, out.stdout) == (0, "31\n"), out.stderr


def test_a_hung_userland_build_step_ends_with_one_sentence(tmp_path, monkeypatch):
    """Every step of a userland build has a bound: one that never returns is stopped and
    named, with its log, instead of holding `make deps` (and the cache lock) forever."""
    from orchestrator.errors import OrchestratorError
    monkeypatch.setattr(busybox, "USERLAND_BUILD_TIMEOUT", 1)
    log = tmp_path / "build.log"
    with pytest.raises(OrchestratorError) as err:
        busybox._run_steps([(["sh", "-c", "echo started; sleep 30"], None)], log, "Building sh for x86_64 with zig")
    assert str(err.value).startswith("Building sh for x86_64 with zig took over 1 s in sh and was stopped")
    assert log.read_text() == "started\n"
