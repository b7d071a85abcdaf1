"""The guest's awk: GNU awk, built static per arch from Debian's source package with zig's
musl. The tree's cases are written for the awk a distribution ships, and some use its
extensions: 7.2's 00basic/trace_marker_raw.tc reads its byte counts with strtonum() and is
UNRESOLVED under busybox's awk, which has none. Installed at /usr/bin/awk, where busybox's
applet link would go. Cached by recipe; nothing committed.
"""
from __future__ import annotations

import os
import pathlib

from . import busybox
from ..arches import Arch

# No translations, arbitrary precision, persistent memory, loadable extensions or readline
# in the guest: the plain interpreter, static, without debug info.
CONFIGURE_FLAGS = ("--disable-nls", "--disable-mpfr", "--disable-pma", "--disable-extensions",
                   "--without-readline", "CFLAGS=-O2", "LDFLAGS=-static")
GUEST_PATH = "usr/bin/awk"


def gawk_for(arch: Arch, cache_root: pathlib.Path, say=print) -> pathlib.Path:
    """The static gawk for `arch` (built once, under a minute)."""
    # support/ first: gawk's Makefile does not make its own helper library.
    jobs = f"-j{os.cpu_count() or 1}"
    return busybox.built_from_source(
        arch, cache_root, "gawk", (pathlib.Path(__file__), pathlib.Path(busybox.__file__)),
        lambda dest: busybox.build_autotools(arch, cache_root, "gawk", dest, CONFIGURE_FLAGS,
                                             [["make", jobs, "-C", "support"], ["make", jobs, "gawk"]],
                                             "gawk", "under a minute", say))
