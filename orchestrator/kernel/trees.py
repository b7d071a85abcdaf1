"""The built-in kernel trees, by name (`KERNEL=6.12`, `KERNEL=7.2`): Debian's
linux-source packages, unpacked into the cache once (kernel/source.py).

6.12 is bookworm's own package, installed by `make deps`. 7.2, the kernel the series
this tool tests are written against (fprobe on the function-graph tracer on every arch
since 6.14), comes from trixie-backports, downloaded through a private apt source list
(debsuite.py; the host's apt configuration is not touched) and unpacked with `dpkg-deb -x`
(it is Architecture: all, the tarball is all it holds).
"""
from __future__ import annotations

import dataclasses
import pathlib
import shutil

from .. import cache, debsuite, hosttools
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
    with cache.file_lock(cache_root / "locks" / f"{tree.package}.lock", f"the {tree.package} download", on_wait=say):
        if tarball.exists():
            return tarball
        state = debsuite.state_dir(cache_root, tree.suite, None)
        say(f"source: fetching {tree.package} from {tree.suite} (a private apt source list in {state}; "
            "about 165 MB, once)")
        deb = debsuite.download(tree.package, tree.suite, cache_root, state / "download",
                                remedy="give your own tree with KERNEL=/path/to/linux.", say=say)
        dest = cache_root / "debs" / tree.package
        partial = dest.with_name(dest.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        out = hosttools.run_tree(["dpkg-deb", "-x", str(deb), str(partial)], capture_output=True, text=True)
        if out.returncode != 0 or not (partial / tree.tarball.lstrip("/")).exists():
            raise OrchestratorError(f"Unpacking {deb.name} failed ({out.stderr.strip()[-200:]}); "
                                    f"remove {state} and retry.", ExitCode.INFRA_ERROR)
        shutil.rmtree(dest, ignore_errors=True)
        partial.rename(dest)
        deb.unlink()   # the tarball is what is kept (the .deb would double the space)
    return tarball
