"""The guest's awk: GNU awk, built static per arch from Debian's source package with zig's
musl. The tree's cases are written for the awk a distribution ships, and some use its
extensions: 7.2's 00basic/trace_marker_raw.tc reads its byte counts with strtonum() and is
UNRESOLVED under busybox's awk, which has none. Installed at /usr/bin/awk, where busybox's
applet link would go. Cached by recipe; nothing committed.
"""
from __future__ import annotations

import os
import pathlib

from .. import cache
from . import busybox
from ..arches import Arch

# No translations, arbitrary precision, persistent memory, loadable extensions or readline
# in the guest: the plain interpreter, static, without debug info.
CONFIGURE_FLAGS = ("--disable-nls", "--disable-mpfr", "--disable-pma", "--disable-extensions",
                   "--without-readline", "CFLAGS=-O2", "LDFLAGS=-static")
GUEST_PATH = "usr/bin/awk"


def gawk_for(arch: Arch, cache_root: pathlib.Path, say=print) -> pathlib.Path:
    """The static gawk for `arch` (built once, under a minute)."""
    # Keyed by the recipe (this file and the compiler wrapper) and the target.
    recipe = cache.digest(arch.zig.target, arch.zig.cpu or "", pathlib.Path(__file__).read_text(),
                          pathlib.Path(busybox.__file__).with_name("zigcc.py").read_text())
    dest = cache_root / "userland" / arch.name / f"gawk-{recipe[:12]}"
    if dest.is_file():
        return dest
    with cache.file_lock(dest.with_name("gawk.lock"), f"gawk for {arch.name}"):
        if not dest.is_file():
            # support/ first: gawk's Makefile does not make its own helper library.
            jobs = f"-j{os.cpu_count() or 1}"
            busybox.build_autotools(arch, cache_root, "gawk", dest, CONFIGURE_FLAGS,
                                    [["make", jobs, "-C", "support"], ["make", jobs, "gawk"]],
                                    "gawk", "under a minute", say)
    return dest
