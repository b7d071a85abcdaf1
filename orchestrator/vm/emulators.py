"""The QEMU builds a guest can run on (`QEMU=` / --qemu), side by side.

`debian` is Debian 12's own QEMU 7.2; `backports` is 10.0 from bookworm-backports, a
suite `deps` adds to the host's apt sources the ordinary way (a sources entry, nothing
pinned above the default). Both QEMUs are one package name at one path, so installing
one removes the other: the one the host has installed is used from /usr/bin, and the
other is downloaded (`apt-get download`) and unpacked (`dpkg-deb -x`) into
<cache>/qemu/<name>-<version>/root/, with the Debian libraries it links against installed
from bookworm. Its firmware (qboot, SeaBIOS, OpenSBI, s390-ccw.img) is found through
`-L` dirs in that root, searched before the host's own.

What differs per QEMU build for an arch is data: the arch table's `on_qemu` rows.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import shutil
import subprocess

from .. import cache, hostpkg, hosttools
from ..arches import Arch, default_qemu, get_arch, select
from ..errors import ExitCode, OrchestratorError


@dataclasses.dataclass(frozen=True)
class Emulator:
    name: str                        # what QEMU= takes
    version: str                     # major.minor: the `--version` line must say "version 7.2."
    suite: str                       # the Debian suite its packages come from
    # What QEMU loads beside its binary (option ROMs, firmware), downloaded with it.
    # ipxe-qemu: the option ROM of a PCI network card (the SSH transport on x86_64).
    data_packages: tuple[str, ...] = ("qemu-system-data", "seabios", "opensbi", "ipxe-qemu")
    # The host's own: `deps` installs it with apt-get; it comes from the cache only where
    # the host has another build installed in its place.
    installed_by_deps: bool = False


EMULATORS = {e.name: e for e in (
    Emulator("debian", "7.2", "bookworm", installed_by_deps=True),
    Emulator("backports", "10.0", "bookworm-backports"),
)}
# The build of an arch whose table row names none (`default_qemu`): the host's own.
DEFAULT_EMULATOR = "debian"
BACKPORTS_SOURCES = pathlib.Path("/etc/apt/sources.list.d/bookworm-backports.sources")
# Packages of a QEMU build's Depends that are part of the build itself, not libraries.
_OWN_PACKAGES = re.compile(r"^(qemu-|seabios|ipxe-qemu|opensbi)")


def get(name: str) -> Emulator:
    if name not in EMULATORS:
        raise OrchestratorError(f"Unknown QEMU build '{name}'; QEMU= takes one of: "
                                + ", ".join(f"{e.name} ({e.version}, {e.suite})" for e in EMULATORS.values())
                                + ".", ExitCode.BAD_INPUT)
    return EMULATORS[name]


def build_for(arch_name: str, requested: str | None) -> str:
    """The QEMU build an arch's guests run on: the one asked for (QEMU=, --qemu), else the
    arch table's `default_qemu` for it (the build that measured better there), else the
    host's own."""
    return requested or default_qemu(arch_name) or DEFAULT_EMULATOR


def by_build(names: str, requested: str | None) -> list[tuple[str, list[Arch]]]:
    """The arches named ('all', 'x86_64,s390x'), grouped by the QEMU build each runs on,
    each as the table has it on that build."""
    groups: dict[str, list[Arch]] = {}
    for arch in select(names):
        build = build_for(arch.name, requested)
        groups.setdefault(build, []).append(get_arch(arch.name, build))
    return list(groups.items())


def version_of(binary: str) -> str | None:
    """'10.0' from a QEMU's `--version` line; None when it does not run."""
    m = re.search(r"version (\d+\.\d+)", hosttools.version_line((binary, "--version")))
    return m.group(1) if m else None


def root_of(emu: Emulator, cache_root: pathlib.Path) -> pathlib.Path:
    return cache_root / "qemu" / f"{emu.name}-{emu.version}" / "root"


def on_host(emu: Emulator, arch: Arch) -> bool:
    """Whether the host's installed QEMU for this arch is this build."""
    return shutil.which(arch.qemu.binary) is not None and version_of(arch.qemu.binary) == emu.version


def apply(arch: Arch, name: str, cache_root: pathlib.Path) -> Arch:
    """The arch (already as the table has it for this build) with the binary, firmware
    and data dirs of QEMU build `name`: the host's when it has that build installed, else
    those unpacked in the cache (which `ensure` fills)."""
    emu = get(name)
    if on_host(emu, arch) or (emu.installed_by_deps and shutil.which(arch.qemu.binary) is None):
        return arch   # the host's; or not installed at all: `apt-get install` is the fix
    root = root_of(emu, cache_root)
    q = arch.qemu
    bios = q.bios
    if bios and bios.startswith("/usr/share/"):
        bios = str(root / bios.lstrip("/"))
    data_dirs = ("-L", str(root / "usr/share/qemu"), "-L", str(root / "usr/share/seabios"))
    return dataclasses.replace(arch, qemu=dataclasses.replace(
        q, binary=str(root / "usr/bin" / q.binary), bios=bios, extra_args=(*data_dirs, *q.extra_args)))


def require(arch: Arch, name: str) -> None:
    """One sentence when the arch's QEMU binary for build `name` is not there or cannot run."""
    emu = get(name)
    binary = arch.qemu.binary
    fix = f"run `make deps ARCH={arch.name} QEMU={emu.name}` (or `orchestrator deps --arch {arch.name} --qemu {emu.name}`)"
    if not os.path.isabs(binary):
        hosttools.require({binary: arch.qemu.package}, f"booting {arch.name} guests")
        return
    if not pathlib.Path(binary).exists():
        raise OrchestratorError(f"QEMU {emu.version} ({arch.qemu.package} from {emu.suite}) is not in the cache "
                                f"for {arch.name}; {fix}.", ExitCode.MISSING_HOST_TOOL)
    missing = missing_libraries(pathlib.Path(binary))
    if missing:
        raise OrchestratorError(f"{binary} cannot run: the libraries {', '.join(missing)} are missing; {fix}, "
                                "which installs them.", ExitCode.MISSING_HOST_TOOL)


def missing_libraries(binary: pathlib.Path) -> list[str]:
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True)
    return [line.split()[0] for line in out.stdout.splitlines() if "not found" in line]


def backports_stanza(mirror: str, keyring: pathlib.Path) -> str:
    return (f"# Added by orchestrator deps (QEMU=backports): Debian's bookworm-backports suite.\n"
            f"Types: deb\nURIs: {mirror}\nSuites: bookworm-backports\nComponents: main\nSigned-By: {keyring}\n")


def _has_suite(suite: str, sources_dir: pathlib.Path) -> bool:
    texts = []
    for path in [sources_dir.parent / "sources.list", *sorted(sources_dir.glob("*.list")),
                 *sorted(sources_dir.glob("*.sources"))]:
        try:
            texts.append(path.read_text(errors="replace"))
        except OSError:
            continue
    pattern = rf"^Suites:.*\s{re.escape(suite)}(\s|$)|^deb\s+(\[[^\]]*\]\s+)?\S+\s+{re.escape(suite)}\s"
    return any(re.search(pattern, t, re.M) for t in texts)


def ensure_sources(emu: Emulator, say, sources_dir: pathlib.Path = BACKPORTS_SOURCES.parent) -> bool:
    """The host's apt sources carry the build's suite (bookworm-backports gets an entry of
    its own, written whole); True when apt needs an update."""
    if emu.suite == "bookworm" or _has_suite(emu.suite, sources_dir):
        return False
    from ..debsuite import KEYRING, host_mirror
    out = sources_dir / f"{emu.suite}.sources"
    text = backports_stanza(host_mirror(), KEYRING)
    say(f"deps: writing {out}")
    hostpkg.write_file(out, text)
    return True


def _library_depends(deb: pathlib.Path) -> list[str]:
    """The package names a .deb depends on that are not QEMU's own (its libraries); the
    first of each list of alternatives."""
    field = subprocess.run(["dpkg-deb", "-f", str(deb), "Depends"], capture_output=True, text=True).stdout
    names = [part.split("|")[0].split("(")[0].strip() for part in field.split(",")]
    return [n for n in names if n and not _OWN_PACKAGES.match(n)]


def ensure(arches: list[Arch], name: str, cache_root: pathlib.Path, say=print) -> None:
    """Every arch's QEMU of build `name` runnable: nothing when the host has that build,
    else its packages downloaded and unpacked into the cache (once per package) and the
    libraries they link against installed from the host's own suite."""
    emu = get(name)
    wanted = [a for a in arches if not on_host(emu, a)]
    if not wanted:
        return
    root = root_of(emu, cache_root)
    stamps = root.parent / "unpacked"
    packages = list(dict.fromkeys([*(a.qemu.package for a in wanted), *emu.data_packages]))
    with cache.file_lock(cache_root / "locks" / f"qemu-{emu.name}.lock", f"QEMU {emu.version}", on_wait=say):
        todo = [p for p in packages if not (stamps / p).exists()]
        if todo:
            if ensure_sources(emu, say):
                hostpkg.run(["apt-get", "update", "-qq"], say)
            say(f"deps: QEMU {emu.version} ({', '.join(todo)}) from {emu.suite} into {root} "
                "(the host's installed QEMU stays as it is)")
            dl = root.parent / "download"
            shutil.rmtree(dl, ignore_errors=True)
            dl.mkdir(parents=True)
            # -t: the suite's version where it has one, else the host's default (ipxe-qemu
            # is bookworm's in both builds).
            download = ["apt-get", "download", "-qq", "-t", emu.suite, *todo]
            try:
                got = hosttools.run_tree(download, cwd=dl, capture_output=True, text=True,
                                         timeout=hostpkg.APT_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                got = subprocess.CompletedProcess(download, 124, "", "")
            if got.returncode:
                # The lists may predate the suite's entry (or a new upload): once more after an update.
                hostpkg.run(["apt-get", "update", "-qq"], say)
                hostpkg.run(download, say, cwd=dl, root=False)
            debs = sorted(dl.glob("*.deb"))
            libs = [lib for deb in debs for lib in _library_depends(deb)]
            missing = [lib for lib in dict.fromkeys(libs) if not hostpkg.installed(lib)]
            if missing:
                hostpkg.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], say)
            stamps.mkdir(parents=True, exist_ok=True)
            for deb in debs:
                package = deb.name.split("_")[0]
                out = hosttools.run_tree(["dpkg-deb", "-x", str(deb), str(root)], capture_output=True, text=True)
                if out.returncode:
                    raise OrchestratorError(f"Unpacking {deb.name} failed ({out.stderr.strip()[-200:]}); "
                                            f"remove {root.parent} and retry.", ExitCode.INFRA_ERROR)
                # Written last: a package cut short by a signal is unpacked again next time.
                cache.atomic_write(stamps / package, deb.name + "\n")
            shutil.rmtree(dl, ignore_errors=True)
    for arch in wanted:
        applied = apply(arch, name, cache_root)
        require(applied, name)
        say(f"deps: {arch.name}: QEMU {emu.version} at {applied.qemu.binary}")
