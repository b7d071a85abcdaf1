"""The project's C guest programs, built for real with the default tree's nolibc and
UAPI headers and run on the host: case list, BPF instruction bytes in both byte
orders (against an encoder written here from struct bpf_insn), the mmap trigger, and
the guest's readelf against binutils' own on real binaries."""
from __future__ import annotations

import pathlib
import shutil
import struct
import subprocess

import pytest

from orchestrator import cache
from orchestrator.guest import guestprog
from orchestrator.kernel import source
from orchestrator.arches import get_arch


@pytest.fixture(scope="session")
def cache_root():
    return cache.default_cache_root()


@pytest.fixture(scope="session")
def default_tree(cache_root):
    return source.default_tree(cache_root, say=lambda *_: None)


@pytest.fixture(scope="session")
def host_kprobe_multi(default_tree, cache_root):
    return guestprog.build_program("kprobe_multi", default_tree, get_arch("x86_64"), cache_root)


def _insn(order: str, code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """struct bpf_insn { u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm; }: the first
    bitfield takes the low nibble on little-endian, the high one on big-endian."""
    regs = (dst << 4 | src) if order == ">" else (src << 4 | dst)
    return struct.pack(order + "BBhi", code, regs, off, imm)


MAP_FD, PID = 0x1234, 0x4321   # the stand-ins `--dump` uses
# The program build_program() emits, spelled out: (code, dst, src, off, imm).
REFERENCE_PROGRAM = [
    (0xbf, 6, 1, 0, 0),            # 0  r6 = r1 (ctx)
    (0x85, 0, 0, 0, 14),           # 1  call get_current_pid_tgid
    (0x77, 0, 0, 0, 32),           # 2  r0 >>= 32
    (0x55, 0, 0, 25, PID),         # 3  if r0 != pid goto 29
    (0xbf, 1, 6, 0, 0),            # 4  r1 = r6
    (0x85, 0, 0, 0, 174),          # 5  call get_attach_cookie
    (0xbf, 7, 0, 0, 0),            # 6  r7 = r0
    (0x25, 7, 0, 21, 7),           # 7  if r7 > 7 goto 29
    (0xbf, 1, 6, 0, 0),            # 8  r1 = r6
    (0x85, 0, 0, 0, 173),          # 9  call get_func_ip
    (0xbf, 8, 0, 0, 0),            # 10 r8 = r0
    (0x63, 10, 7, -4, 0),          # 11 *(u32 *)(r10 - 4) = r7
    (0xbf, 2, 10, 0, 0),           # 12 r2 = r10
    (0x07, 2, 0, 0, -4),           # 13 r2 += -4
    (0x18, 1, 1, 0, MAP_FD),       # 14 r1 = map (ld_imm64, BPF_PSEUDO_MAP_FD)
    (0x00, 0, 0, 0, 0),            # 15   (its upper half)
    (0x85, 0, 0, 0, 1),            # 16 call map_lookup_elem
    (0x15, 0, 0, 11, 0),           # 17 if r0 == 0 goto 29
    (0xb7, 1, 0, 0, 1),            # 18 r1 = 1
    (0xdb, 0, 1, 0, 0),            # 19 lock *(u64 *)(r0 + 0) += r1
    (0x07, 7, 0, 0, 8),            # 20 r7 += 8
    (0x63, 10, 7, -4, 0),          # 21 *(u32 *)(r10 - 4) = r7
    (0xbf, 2, 10, 0, 0),           # 22 r2 = r10
    (0x07, 2, 0, 0, -4),           # 23 r2 += -4
    (0x18, 1, 1, 0, MAP_FD),       # 24 r1 = map
    (0x00, 0, 0, 0, 0),            # 25
    (0x85, 0, 0, 0, 1),            # 26 call map_lookup_elem
    (0x15, 0, 0, 1, 0),            # 27 if r0 == 0 goto 29
    (0x7b, 0, 8, 0, 0),            # 28 *(u64 *)(r0 + 0) = r8
    (0xb7, 0, 0, 0, 0),            # 29 r0 = 0
    (0x95, 0, 0, 0, 0),            # 30 exit
]


def _reference_hex(order: str) -> list[str]:
    return [_insn(order, *i).hex() for i in REFERENCE_PROGRAM]


def _run(argv, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60, **kw)


def test_case_list_in_the_binary_matches_what_the_host_reads(host_kprobe_multi):
    out = _run([host_kprobe_multi, "--list"])
    assert out.returncode == 0
    assert out.stdout.split() == guestprog.program_cases("kprobe_multi")
    assert "cookies" in out.stdout.split() and "session" in out.stdout.split()


@pytest.mark.parametrize("order,flag", [("<", "little"), (">", "big")])
def test_bpf_program_bytes_in_both_byte_orders(host_kprobe_multi, order, flag):
    out = _run([host_kprobe_multi, "--dump", flag])
    assert out.returncode == 0
    assert out.stdout.split() == _reference_hex(order)


def test_the_two_byte_orders_differ_where_they_must():
    little, big = _reference_hex("<"), _reference_hex(">")
    # r6 = r1: registers swap nibbles, and the 32-bit immediate of a call swaps bytes.
    assert little[0] == "bf16000000000000" and big[0] == "bf61000000000000"
    assert little[1] == "850000000e000000" and big[1] == "850000000000000e"


def test_big_endian_build_under_qemu_user(default_tree, cache_root):
    """The s390x binary itself (not the host's big-endian mode) emits the big-endian bytes."""
    s390x = get_arch("s390x")
    if not shutil.which(s390x.compiler) or not shutil.which("qemu-s390x"):
        pytest.skip(f"needs {s390x.compiler} and qemu-s390x (qemu-user) on the host")
    binary = guestprog.build_program("kprobe_multi", default_tree, s390x, cache_root)
    out = _run(["qemu-s390x", binary, "--dump", "big"])
    assert out.returncode == 0
    assert out.stdout.split() == _reference_hex(">")


def test_unknown_case_and_bad_usage_exit_2(host_kprobe_multi):
    out = _run([host_kprobe_multi, "--prefix", "__x64_sys_", "no_such_case"])
    assert out.returncode == 2 and "unknown case no_such_case" in out.stdout
    assert _run([host_kprobe_multi]).returncode == 2


def test_trigger_mmap_passes_the_six_values(default_tree, cache_root):
    trigger = guestprog.build_program("args_trigger", default_tree, get_arch("x86_64"), cache_root)
    ok = _run([trigger, "mmap", "0x10000000", "0x3000", "3", "0x22", "-1", "0x50000"])
    assert ok.returncode == 0 and ok.stdout.startswith("mmap=") and ok.stdout.strip().endswith("errno=0")
    # An offset that is not page aligned is refused before the mapping: EINVAL, exit 1.
    bad = _run([trigger, "mmap", "0", "0x3000", "3", "0x22", "-1", "0x1001"])
    assert bad.returncode == 1 and "errno=22" in bad.stdout


def test_second_build_is_the_cached_binary(default_tree, cache_root, host_kprobe_multi):
    again = guestprog.build_program("kprobe_multi", default_tree, get_arch("x86_64"), cache_root)
    assert again == host_kprobe_multi


def test_programs_in_the_image(cache_root, tmp_path):
    # A tree with nolibc gets them all, whatever the suites: the image stays the same;
    # 6.12 has no ftrace poll.c, so that one is not asked for.
    if not pathlib.Path(source.BUILTIN_TREES["6.12"].tarball).exists():
        pytest.skip("Debian's linux-source-6.12 is not installed (run `make deps`)")
    lts = source.builtin_tree("6.12", cache_root, say=lambda *_: None)
    assert guestprog.programs_for(["dynevent"], lts.path) == ("kprobe_multi", "args_trigger", "readelf", "nice", "lscpu")
    # Without nolibc only what the suites need is asked for (and its build explains).
    assert guestprog.programs_for(["dynevent", "kprobe"], tmp_path) == ()
    assert guestprog.programs_for(["tcscripts", "kprobe_multi"], tmp_path) == ("args_trigger", "kprobe_multi")


@pytest.mark.e2e
def test_the_7_2_tree_is_fetched_and_its_selftests_get_their_poll_helper(cache_root, tmp_path):
    """KERNEL=7.2: Debian's linux-source-7.2 from trixie-backports through a private apt
    source list (once per cache); the guest programs build against its nolibc, and its
    trigger-hist-poll.tc finds the poll helper it runs from ${FTRACETEST_ROOT}."""
    import subprocess
    from orchestrator.guest import image
    tree = source.builtin_tree("7.2", cache_root, say=lambda *_: None)
    assert tree.version.startswith("7.2.") and tree.origin == "Debian linux-source-7.2.tar.xz"
    programs = guestprog.programs_for(["dynevent"], tree.path)
    assert programs == ("kprobe_multi", "args_trigger", "readelf", "nice", "lscpu", "ftrace_poll")
    img = image.build_image(tree, get_arch("x86_64"), cache_root, None, programs, say=lambda *_: None)
    assert img.program_errors == {}
    listing = subprocess.run(["cpio", "-t", "--quiet"], input=img.path.read_bytes(), capture_output=True).stdout.decode()
    assert {"kto/ftrace/poll", "kto/bin/kprobe_multi", "kto/bin/args_trigger", "usr/bin/readelf", "usr/bin/nice",
            "usr/bin/lscpu", "usr/bin/awk", "bin/sh", "bin/busybox",
            "kto/ftrace/test.d/trigger/trigger-hist-poll.tc"} <= set(listing.split())
    # The host's apt configuration was not touched.
    assert not any("trixie" in p.read_text() for p in pathlib.Path("/etc/apt").rglob("*.list*") if p.is_file())
    assert not any("trixie" in p.read_text() for p in pathlib.Path("/etc/apt/sources.list.d").glob("*.sources"))


# -- readelf: what dynevent/add_remove_uprobe.tc reads of it, as binutils prints it -------

_SEGMENT_ROW = r"^  [A-Z_]+ +0x[0-9a-f]+ 0x[0-9a-f]+ 0x[0-9a-f]+ 0x[0-9a-f]+ 0x[0-9a-f]+ [RWE ]{3} 0x[0-9a-f]+$"


def _readelf_rows(text: str) -> tuple[list[str], list[str]]:
    """(the entry point line, the segment rows) of `readelf -hW`/`-lW` output."""
    import re
    lines = text.splitlines()
    return ([l for l in lines if "Entry point address:" in l],
            [l for l in lines if re.match(_SEGMENT_ROW, l)])


def _binutils_readelf(path) -> tuple[list[str], list[str]]:
    if not shutil.which("readelf"):
        pytest.skip("needs binutils' readelf on the host")
    return _readelf_rows(_run(["readelf", "-hW", path]).stdout + _run(["readelf", "-lW", path]).stdout)


@pytest.fixture(scope="session")
def host_readelf(default_tree, cache_root):
    return guestprog.build_program("readelf", default_tree, get_arch("x86_64"), cache_root)


def test_readelf_prints_what_binutils_prints_for_pie_and_static_binaries(host_readelf, cache_root):
    from orchestrator.guest import busybox
    static = busybox.busybox_for(get_arch("x86_64"), cache_root, say=lambda *_: None)
    for binary in (pathlib.Path("/bin/ls"), static):      # a PIE (DYN) and a static EXEC
        ours = _readelf_rows(_run([host_readelf, "-hW", binary]).stdout + _run([host_readelf, "-lW", binary]).stdout)
        entry, rows = _binutils_readelf(binary)
        assert ours == (entry, rows) and len(entry) == 1 and any(" LOAD " in r for r in rows), binary


def test_readelf_reads_a_big_endian_binary_in_a_big_endian_guest(default_tree, cache_root):
    """Built for s390x and run there (qemu-user): the byte order is the file's."""
    from orchestrator.guest import busybox
    s390x = get_arch("s390x")
    if not shutil.which(s390x.compiler) or not shutil.which("qemu-s390x"):
        pytest.skip(f"needs {s390x.compiler} and qemu-s390x (qemu-user) on the host")
    binary = guestprog.build_program("readelf", default_tree, s390x, cache_root)
    target = busybox.busybox_for(s390x, cache_root, say=lambda *_: None)
    out = _run(["qemu-s390x", binary, "-hlW", target])
    assert out.returncode == 0
    assert _readelf_rows(out.stdout) == _binutils_readelf(target)


def test_readelf_refuses_what_it_cannot_answer(host_readelf, tmp_path):
    """Exit 2 for an option it does not have (a case reading -s output would read nothing
    plausible), 1 for a file that is not ELF."""
    assert _run([host_readelf, "-Ws", "/bin/ls"]).returncode == 2
    assert _run([host_readelf, "/bin/ls"]).returncode == 2
    text = tmp_path / "script.sh"
    text.write_text("#!/bin/sh\n")
    out = _run([host_readelf, "-h", text])
    assert out.returncode == 1 and "not an ELF file" in out.stdout


# -- nice: Debian's busybox-static has none; 7.2's inter-event trigger cases run one ---------

@pytest.fixture(scope="session")
def host_nice(default_tree, cache_root):
    return guestprog.build_program("nice", default_tree, get_arch("x86_64"), cache_root)


def test_nice_runs_the_command_at_the_niceness_it_was_asked_for(host_nice):
    import os
    here = os.nice(0)

    def niceness(*args: str) -> int:
        # Field 19 of /proc/self/stat (comm, "cut", has no space in it).
        out = _run([host_nice, *args, "cut", "-d", " ", "-f", "19", "/proc/self/stat"])
        assert out.returncode == 0, out.stderr
        return int(out.stdout)

    assert niceness("-n", "1") == min(here + 1, 19)       # as trigger-onchange-action-hist.tc
    assert niceness("-3") == min(here + 3, 19)
    assert niceness() == min(here + 10, 19)               # the default adjustment
    assert niceness("-n", "40") == 19                     # clamped, as coreutils'
    assert niceness("-n", "2", "--") == min(here + 2, 19)


def test_nice_exits_as_coreutils_does_when_it_cannot_run_the_command(host_nice, tmp_path):
    missing = _run([host_nice, "-n", "1", "no-such-command-here"])
    assert missing.returncode == 127 and "no-such-command-here: not found" in missing.stderr
    assert _run([host_nice, str(tmp_path)]).returncode == 126          # found, not runnable
    assert _run([host_nice]).returncode == 125                         # no command
    assert _run([host_nice, "-n", "x", "true"]).returncode == 125      # not a number
    # The command's own exit code and output come through.
    out = _run([host_nice, "sh", "-c", "echo ran; exit 7"])
    assert (out.returncode, out.stdout) == (7, "ran\n")
