"""`orchestrator deps`: install what the chosen arches need on the host, from the arch
table (toolchain, QEMU, busybox source), and fetch each guest's busybox into the cache.
Installs nothing when everything is there already."""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

from .. import hostpkg
from ..arches import Arch
from ..errors import ExitCode, OrchestratorError
from ..guest import busybox, dropbear, gawk
from ..vm import emulators


def log_path(cache_root: pathlib.Path) -> pathlib.Path:
    """Where apt's and dpkg's own output goes: the terminal gets one line per step."""
    return cache_root / "logs" / "deps.log"


def _run(argv: list[str], say, log: pathlib.Path) -> None:
    say(f"deps: {' '.join(argv)}")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(argv)}\n".encode())
        out.flush()
        rc = subprocess.run(hostpkg.as_root(argv), env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                            stdout=out, stderr=subprocess.STDOUT).returncode
    if rc:
        tail = [l for l in log.read_text(errors="replace").splitlines() if l.strip()][-3:]
        raise OrchestratorError(f"`{' '.join(argv)}` failed (exit {rc}: {' / '.join(tail)[-300:]}); its whole "
                                f"output is in {log}.", ExitCode.MISSING_HOST_TOOL)


def install(arches: list[Arch], cache_root: pathlib.Path, say=print, ssh: bool = False,
            qemu: str = emulators.DEFAULT_EMULATOR) -> None:
    """arches: as the table has them on the QEMU build `qemu`. ssh: also what the SSH
    transport needs (dropbear's source), and build the guests' dropbear into the cache.
    Every arch's guest shell and awk are built from Debian's source with zig
    (guest/busybox.py, gawk.py), so zig and a deb-src entry are always set up. A QEMU build
    other than Debian's own comes from vm/emulators.py, not apt-get install."""
    # Another arch's busybox comes through a private apt source list (debsuite.py): the
    # host's dpkg architectures are not touched.
    need_update = bool(arches) and _ensure_deb_src(say)
    own_qemu = emulators.get(qemu).installed_by_deps
    missing = [p for a in arches for p in a.host_packages() if (own_qemu or p != a.qemu.package)
               and not hostpkg.installed(p)]
    missing = [p for p in missing if not hostpkg.installed(p)]
    missing = list(dict.fromkeys(missing))
    if missing or need_update:
        _run(["apt-get", "update", "-qq"], say, log_path(cache_root))
    if missing:
        _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], say, log_path(cache_root))
    if arches and subprocess.run(
            [sys.executable, "-m", "ziglang", "version"], capture_output=True).returncode:
        say("deps: pip install ziglang (the C compiler for guest userland Debian ships no binary of)")
        if subprocess.run([sys.executable, "-m", "pip", "install", "-q", "ziglang"]).returncode:
            raise OrchestratorError("`pip install ziglang` failed; run it by hand to see why.",
                                    ExitCode.MISSING_HOST_TOOL)
    emulators.ensure(arches, qemu, cache_root, say)
    for arch in arches:
        path = busybox.busybox_for(arch, cache_root, say)
        say(f"deps: {arch.name}: busybox {path}")
        say(f"deps: {arch.name}: shell {busybox.shell_for(arch, cache_root, say)}")
        say(f"deps: {arch.name}: awk {gawk.gawk_for(arch, cache_root, say)}")
        if ssh and arch.ssh is None:
            say(f"deps: {arch.name}: no SSH transport on this arch (see its `ssh` row in the arch table)")
        elif ssh:
            say(f"deps: {arch.name}: dropbear {dropbear.dropbear_for(arch, cache_root, say)}")


APT_SOURCES_DIR = pathlib.Path("/etc/apt/sources.list.d")
DEB_SRC_FILE = APT_SOURCES_DIR / "orchestrator-deb-src.sources"


def _ensure_deb_src(say, sources_dir: pathlib.Path = APT_SOURCES_DIR,
                    out: pathlib.Path = DEB_SRC_FILE) -> bool:
    """Add deb-src twins of the machine's deb822 'Types: deb' stanzas (for busybox's
    source package). Returns True when apt needs an update. The file is written whole
    (a temp file renamed over it), and one that is not what it should be (an earlier
    write cut short) is written again."""
    stanzas = []
    for f in sorted(p for p in sources_dir.glob("*.sources") if p != out):
        for block in f.read_text().split("\n\n"):
            if re.search(r"^Types:.*\bdeb\b", block, re.M) and "deb-src" not in block:
                lines = [l for l in block.splitlines() if l.strip() and not l.startswith("#")]
                stanzas.append("\n".join("Types: deb-src" if l.startswith("Types:") else l for l in lines))
    if not stanzas:
        raise OrchestratorError(
            "No deb822 apt source found to derive a deb-src entry from; add a deb-src line for "
            "bookworm to your apt sources by hand and run `apt-get update`.", ExitCode.MISSING_HOST_TOOL)
    text = "# Added by orchestrator deps: busybox's source package for riscv64/loongarch64 guests.\n"
    text += "\n\n".join(stanzas) + "\n"
    try:
        if out.read_text() == text:
            return False
    except OSError:
        pass
    say(f"deps: writing {out}")
    hostpkg.write_file(out, text)
    return True
