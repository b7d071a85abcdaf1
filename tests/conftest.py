from __future__ import annotations

import pathlib
import subprocess

import pytest

DATA = pathlib.Path(__file__).parent / "data"
DEBIAN_TARBALL = pathlib.Path("/usr/src/linux-source-6.12.tar.xz")


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    return DATA


@pytest.fixture(scope="session")
def kconfig_tree(tmp_path_factory) -> pathlib.Path:
    """The Kconfig files of Debian's 6.12 tree (the real ones, extracted from the package)."""
    if not DEBIAN_TARBALL.exists():
        pytest.skip(f"{DEBIAN_TARBALL} is not installed (run `make deps`)")
    dest = tmp_path_factory.mktemp("kconfig-tree")
    subprocess.run(["tar", "-xJf", str(DEBIAN_TARBALL), "-C", str(dest), "--wildcards",
                    "*/Kconfig*", "*/Makefile"], check=True)
    (top,) = [p for p in dest.iterdir() if p.is_dir()]
    return top


def read_log(path: pathlib.Path) -> bytes:
    """A captured console log; the large ones are stored gzip-compressed."""
    import gzip
    gz = path.with_name(path.name + ".gz")
    return gzip.decompress(gz.read_bytes()) if not path.exists() and gz.exists() else path.read_bytes()


def split_boots(console_log: bytes) -> list[bytes]:
    """A run's console.log holds every boot; each starts at QEMU's first output."""
    marker = b"KTO:READY:"
    parts, start = [], 0
    idx = console_log.find(marker)
    while idx != -1:
        nxt = console_log.find(marker, idx + 1)
        if nxt == -1:
            parts.append(console_log[start:])
            break
        # cut at the start of the line that begins the next boot's kernel messages
        cut = console_log.rfind(b"\n", 0, console_log.rfind(b"Linux version", 0, nxt)) + 1
        parts.append(console_log[start:cut])
        start, idx = cut, nxt
    return parts
