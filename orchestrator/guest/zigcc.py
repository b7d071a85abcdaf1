"""A C compiler for guest userland of arches Debian has no cross libc for: zig's clang
with its bundled musl (PyPI's `ziglang`). Used as CC when building busybox.

usage: python -m orchestrator.guest.zigcc TARGET MCPU|- [compiler args...]  ("-": zig's default cpu)

zig's linker refuses a few GNU ld flags that busybox's build passes; they only tune
warnings, map files and section sorting, so they are dropped.
"""
from __future__ import annotations

import os
import sys

_DROP_EXACT = {"-static-libgcc", "-Wl,--warn-common", "-Wl,--sort-common", "-Wl,--sort-section,alignment",
               "-Wl,--verbose"}
_DROP_PREFIX = ("-Wl,-Map", "-Wl,--sort-section")


def filtered(args: list[str]) -> list[str]:
    out = []
    for a in args:
        if a in _DROP_EXACT or a.startswith(_DROP_PREFIX):
            continue
        if a.startswith("-Wl,"):
            parts = [p for p in a[4:].split(",")
                     if p not in ("--warn-common", "--sort-common", "--verbose")
                     and not p.startswith(("-Map", "--sort-section"))]
            # "-Wl,-Map,file" splits into -Map and file: drop the file too.
            if "-Map" in a[4:].split(","):
                parts = []
            if not parts:
                continue
            a = "-Wl," + ",".join(parts)
        out.append(a)
    return out


def main() -> None:
    target, mcpu, *args = sys.argv[1:]
    cpu = [] if mcpu == "-" else [f"-mcpu={mcpu}"]
    argv = [sys.executable, "-m", "ziglang", "cc", "-target", target, *cpu, *filtered(args)]
    os.execv(sys.executable, argv)


if __name__ == "__main__":
    main()
