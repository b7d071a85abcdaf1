"""The guest's static busybox for an arch: the host's own binary, or Debian's package
for another architecture, downloaded with `apt-get download` and unpacked into the cache."""
from __future__ import annotations

import pathlib
import shutil
import subprocess
import tempfile

from . import cache
from .arches import Arch
from .errors import ExitCode, OrchestratorError


def busybox_for(arch: Arch, cache_root: pathlib.Path) -> pathlib.Path:
    spec = arch.busybox
    if spec.deb_arch is None:
        path = pathlib.Path(spec.path or "/bin/busybox")
        if not path.is_file():
            raise OrchestratorError(
                f"No static busybox for {arch.name} at {path}; install it with "
                f"`apt-get install {spec.package}` (or `make deps`).", ExitCode.MISSING_HOST_TOOL)
        return path
    dest = cache_root / "userland" / arch.name / "busybox"
    if dest.is_file():
        return dest
    with cache.file_lock(dest.with_name("busybox.lock"), f"busybox for {arch.name}"):
        if dest.is_file():
            return dest
        _unpack_deb(f"{spec.package}:{spec.deb_arch}", "bin/busybox", dest, arch.name)
    return dest


def _unpack_deb(package: str, member: str, dest: pathlib.Path, arch_name: str) -> None:
    with tempfile.TemporaryDirectory(prefix="orchestrator-deb-") as tmp:
        got = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
        debs = list(pathlib.Path(tmp).glob("*.deb"))
        if got.returncode != 0 or not debs:
            raise OrchestratorError(
                f"Cannot download {package} ({(got.stderr.strip().splitlines() or ['no .deb'])[-1]}); "
                f"run `make deps ARCH={arch_name}` (it adds the dpkg architecture and updates apt).",
                ExitCode.MISSING_HOST_TOOL)
        out = pathlib.Path(tmp, "x")
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(out)], check=True)
        src = out / member
        if not src.is_file():
            raise OrchestratorError(f"{debs[0].name} holds no {member}; the package layout changed, "
                                    "set a busybox path for this arch in the arch table.",
                                    ExitCode.INFRA_ERROR)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")
        shutil.copyfile(src, partial)
        partial.chmod(0o755)
        partial.replace(dest)
