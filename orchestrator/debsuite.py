"""A package from a Debian suite the host's apt sources do not name (trixie-backports'
linux-source-7.2, trixie's riscv64 busybox-static): `apt-get download`
through a private apt source list, its lists and cache in <cache>/apt/<suite>[-<arch>]/.
The host's apt configuration, its dpkg architectures and its installed packages are not
touched; the .deb is only ever unpacked with `dpkg-deb -x`."""
from __future__ import annotations

import pathlib
import re
import subprocess

from . import cache, hosttools
from .errors import ExitCode, OrchestratorError

KEYRING = pathlib.Path("/usr/share/keyrings/debian-archive-keyring.gpg")
_FALLBACK_MIRROR = "http://deb.debian.org/debian"


def host_mirror() -> str:
    """The Debian mirror the host's apt sources use for its main archive."""
    texts = []
    for path in [pathlib.Path("/etc/apt/sources.list"), *sorted(pathlib.Path("/etc/apt/sources.list.d").glob("*"))]:
        try:
            texts.append(path.read_text(errors="replace"))
        except OSError:
            continue
    for text in texts:
        for m in re.finditer(r"^URIs:\s*(\S+)|^deb\s+(?:\[[^\]]*\]\s+)?(\S+)", text, re.M):
            uri = m.group(1) or m.group(2)
            if uri.rstrip("/").endswith("/debian"):
                return uri.rstrip("/")
    return _FALLBACK_MIRROR


def state_dir(cache_root: pathlib.Path, suite: str, deb_arch: str | None) -> pathlib.Path:
    return cache_root / "apt" / (suite if deb_arch is None else f"{suite}-{deb_arch}")


def _apt(state: pathlib.Path, deb_arch: str | None, *args: str,
         cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess:
    options = [f"-oDir::Etc::SourceList={state / 'sources.list'}", "-oDir::Etc::SourceParts=/dev/null",
               f"-oDir::State::Lists={state / 'lists'}", f"-oDir::Cache={state / 'cache'}",
               "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root", "-qq"]
    if deb_arch:
        # Another architecture's packages without `dpkg --add-architecture` on the host.
        options += [f"-oAPT::Architecture={deb_arch}", f"-oAPT::Architectures::={deb_arch}"]
    return hosttools.run_tree(["apt-get", *options, *args], cwd=cwd, capture_output=True, text=True,
                              timeout=1800)


def download(package: str, suite: str, cache_root: pathlib.Path, into: pathlib.Path, *,
             deb_arch: str | None = None, remedy: str, say=print) -> pathlib.Path:
    """`package`'s .deb from `suite` (for `deb_arch`, else the host's architecture or
    Architecture: all), downloaded into `into`; older .debs of it there are removed first.
    A failure is one sentence ending in `remedy` (what the user can do instead)."""
    state = state_dir(cache_root, suite, deb_arch)
    arch_option = f"arch={deb_arch} " if deb_arch else ""
    with cache.file_lock(cache_root / "locks" / f"apt-{state.name}.lock", f"the {suite} package lists",
                         on_wait=say):
        for d in (state / "lists" / "partial", state / "cache" / "archives" / "partial"):
            d.mkdir(parents=True, exist_ok=True)
        cache.atomic_write(state / "sources.list",
                           f"deb [{arch_option}signed-by={KEYRING}] {host_mirror()} {suite} main\n")
        got = _apt(state, deb_arch, "update")
        if got.returncode != 0:
            raise OrchestratorError(
                f"apt-get update of {suite} failed ({(got.stderr or got.stdout).strip()[-200:]}); "
                f"check the network to {host_mirror()}, or {remedy}", ExitCode.MISSING_HOST_TOOL)
        into.mkdir(parents=True, exist_ok=True)
        for old in into.glob(f"{package}_*.deb"):
            old.unlink()
        got = _apt(state, deb_arch, "download", package, cwd=into)
        debs = sorted(into.glob(f"{package}_*.deb"))
        if got.returncode != 0 or not debs:
            raise OrchestratorError(
                f"apt-get download {package} from {suite}{' for ' + deb_arch if deb_arch else ''} failed "
                f"({(got.stderr or got.stdout).strip()[-200:] or 'no .deb'}); {remedy}",
                ExitCode.MISSING_HOST_TOOL)
        return debs[-1]
