"""`orchestrator deps`: install what the chosen arches need on the host, from the arch
table (toolchain, QEMU, busybox source), and fetch each guest's busybox into the cache.
Installs nothing when everything is there already."""
from __future__ import annotations

import os
import pathlib
import subprocess

from .arches import Arch
from .errors import ExitCode, OrchestratorError
from . import userland


def _installed(package: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
    return out.returncode == 0 and "install ok installed" in out.stdout


def _root_argv(argv: list[str]) -> list[str]:
    return argv if os.geteuid() == 0 else ["sudo", *argv]


def _run(argv: list[str], say) -> None:
    say("deps: " + " ".join(argv))
    if subprocess.run(_root_argv(argv), env=dict(os.environ, DEBIAN_FRONTEND="noninteractive")).returncode:
        raise OrchestratorError(f"`{' '.join(argv)}` failed; run it by hand to see why, then retry.",
                                ExitCode.MISSING_HOST_TOOL)


def install(arches: list[Arch], cache_root: pathlib.Path, say=print) -> None:
    native = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    foreign = set(subprocess.run(["dpkg", "--print-foreign-architectures"], capture_output=True,
                                 text=True).stdout.split())
    need_update = False
    for arch in arches:
        deb_arch = arch.busybox.deb_arch
        if deb_arch and deb_arch != native and deb_arch not in foreign:
            _run(["dpkg", "--add-architecture", deb_arch], say)
            foreign.add(deb_arch)
            need_update = True
    missing = [p for a in arches for p in a.host_packages() if not _installed(p)]
    missing = list(dict.fromkeys(missing))
    if missing or need_update:
        _run(["apt-get", "update", "-qq"], say)
    if missing:
        _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], say)
    for arch in arches:
        path = userland.busybox_for(arch, cache_root)
        say(f"deps: {arch.name}: busybox {path}")
