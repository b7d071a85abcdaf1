"""The built-in kernel trees, by name (`KERNEL=6.12`, `KERNEL=7.2`): Debian's
linux-source packages, unpacked into the cache once (kernel/source.py).

6.12 is bookworm's own package, installed by `make deps`. 7.2, the kernel the series
this tool tests are written against (fprobe on the function-graph tracer on every arch
since 6.14), comes from trixie-backports: it is fetched with a private apt source list,
lists and cache in <cache>/apt/<suite>/ (the host's apt configuration is not touched),
`apt-get download` and `dpkg-deb -x` (it is Architecture: all, the tarball is all it
holds).
"""
from __future__ import annotations

import dataclasses
import pathlib
import re
import shutil
import subprocess

from .. import hosttools
from .. import cache
from ..errors import ExitCode, OrchestratorError


@dataclasses.dataclass(frozen=True)
class BuiltinTree:
    name: str                 # what KERNEL= takes
    package: str              # Debian's linux-source package
    suite: str | None         # None: the host's own apt sources; else fetched privately from it
    tarball: str              # the path the package installs it at

    def tarball_in(self, cache_root: pathlib.Path) -> pathlib.Path:
        """Where the tarball is once this tree is available."""
        if self.suite is None:
            return pathlib.Path(self.tarball)
        return cache_root / "debs" / self.package / self.tarball.lstrip("/")


BUILTIN_TREES = {t.name: t for t in (
    BuiltinTree("6.12", "linux-source-6.12", None, "/usr/src/linux-source-6.12.tar.xz"),
    BuiltinTree("7.2", "linux-source-7.2", "trixie-backports", "/usr/src/linux-source-7.2.tar.xz"),
)}
# The tree series are written against (mainline-near); 6.12 stays as the LTS tree.
DEFAULT_TREE = "7.2"
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


def _apt(state: pathlib.Path, *args: str, cwd: pathlib.Path | None = None) -> subprocess.CompletedProcess:
    options = [f"-oDir::Etc::SourceList={state / 'sources.list'}", "-oDir::Etc::SourceParts=/dev/null",
               f"-oDir::State::Lists={state / 'lists'}", f"-oDir::Cache={state / 'cache'}",
               "-oDebug::NoLocking=1", "-oAPT::Sandbox::User=root", "-qq"]
    return hosttools.run_tree(["apt-get", *options, *args], cwd=cwd, capture_output=True, text=True,
                              timeout=1800)


def ensure_tarball(tree: BuiltinTree, cache_root: pathlib.Path, say=print) -> pathlib.Path:
    """The tree's tarball, fetched into the cache first when it comes from another suite."""
    tarball = tree.tarball_in(cache_root)
    if tree.suite is None:
        if not tarball.exists():
            raise OrchestratorError(
                f"The {tree.name} kernel tree {tarball} is not installed; install it with "
                f"`apt-get install {tree.package}` (or `make deps`), or set KERNEL=/path/to/linux.",
                ExitCode.MISSING_HOST_TOOL)
        return tarball
    if tarball.exists():
        return tarball
    state = cache_root / "apt" / tree.suite
    with cache.file_lock(cache_root / "locks" / f"{tree.package}.lock", f"the {tree.package} download", on_wait=say):
        if tarball.exists():
            return tarball
        for d in (state / "lists" / "partial", state / "cache" / "archives" / "partial"):
            d.mkdir(parents=True, exist_ok=True)
        cache.atomic_write(state / "sources.list",
                           f"deb [signed-by={KEYRING}] {host_mirror()} {tree.suite} main\n")
        say(f"source: fetching {tree.package} from {tree.suite} (a private apt source list in {state}; "
            "about 165 MB, once)")
        got = _apt(state, "update")
        if got.returncode != 0:
            raise OrchestratorError(
                f"apt-get update of {tree.suite} failed ({(got.stderr or got.stdout).strip()[-200:]}); "
                f"check the network to {host_mirror()}, or give your own tree with KERNEL=/path/to/linux.",
                ExitCode.MISSING_HOST_TOOL)
        dl = state / "download"
        dl.mkdir(exist_ok=True)
        for old in dl.glob("*.deb"):
            old.unlink()
        got = _apt(state, "download", tree.package, cwd=dl)
        debs = sorted(dl.glob(f"{tree.package}_*.deb"))
        if got.returncode != 0 or not debs:
            raise OrchestratorError(
                f"apt-get download {tree.package} from {tree.suite} failed "
                f"({(got.stderr or got.stdout).strip()[-200:]}); give your own tree with KERNEL=/path/to/linux.",
                ExitCode.MISSING_HOST_TOOL)
        dest = cache_root / "debs" / tree.package
        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        out = hosttools.run_tree(["dpkg-deb", "-x", str(debs[-1]), str(partial)], capture_output=True, text=True)
        if out.returncode != 0 or not (partial / tree.tarball.lstrip("/")).exists():
            raise OrchestratorError(f"Unpacking {debs[-1].name} failed ({out.stderr.strip()[-200:]}); "
                                    f"remove {state} and retry.", ExitCode.INFRA_ERROR)
        shutil.rmtree(dest, ignore_errors=True)
        partial.rename(dest)
        debs[-1].unlink()   # the tarball is what is kept (the .deb would double the space)
    return tarball
