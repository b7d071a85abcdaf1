from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import pytest

DATA = pathlib.Path(__file__).parent / "data"
# The LTS tree bookworm installs (make deps): the Kconfig parser's tests read its Kconfig files.
DEBIAN_TARBALL = pathlib.Path("/usr/src/linux-source-6.12.tar.xz")
# What the default tree's banner says (KERNEL unset: Debian's linux-source-<DEFAULT_TREE>).
from orchestrator.kernel.trees import DEFAULT_TREE  # noqa: E402
DEFAULT_BANNER = f"Linux version {DEFAULT_TREE}."


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    return DATA


@pytest.fixture(scope="session")
def kconfig_tree(tmp_path_factory) -> pathlib.Path:
    """The Kconfig files of Debian's 6.12 tree (the real ones, extracted from the package)."""
    if not DEBIAN_TARBALL.exists():
        pytest.skip(f"{DEBIAN_TARBALL} is not installed (run `make deps`)")
    return extract_from_tarball(tmp_path_factory.mktemp("kconfig-tree"), "--wildcards", "*/Kconfig*", "*/Makefile")


def extract_from_tarball(dest: pathlib.Path, *members: str) -> pathlib.Path:
    """Members of Debian's 6.12 tarball (tar arguments) into dest; the tree's top dir."""
    if not DEBIAN_TARBALL.exists():
        pytest.skip(f"{DEBIAN_TARBALL} is not installed (run `make deps`)")
    subprocess.run(["tar", "-xJf", str(DEBIAN_TARBALL), "-C", str(dest), *members], check=True)
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


GIT_ID = ["-c", "user.name=Test Author", "-c", "user.email=author@example.org"]


def git(repo, *args, input: bytes | None = None) -> str:
    return subprocess.run(["git", "-C", str(repo), *GIT_ID, *args], input=input, capture_output=True,
                          check=True).stdout.decode().strip()


def edit(root: pathlib.Path, rel: str, old: str, new: str) -> None:
    """Replace old by new in a file of the tree; old "" and no such file: a new file."""
    p = root / rel
    if not old and not p.exists():
        p.write_text(new)
        return
    text = p.read_text()
    assert old in text, (rel, old)
    p.write_text(text.replace(old, new, 1))


_SCRATCH: dict[pathlib.Path, pathlib.Path] = {}


def scratch_worktree():
    """The default tree (Debian's, unpacked in the cache) checked out at its HEAD in a
    scratch worktree, with no edit left: a checkout of the whole tree costs 20-50 s, so
    each test process makes one and resets it for every series, which touches only the
    files the last series changed. It goes when the process ends."""
    import atexit
    import tempfile
    from orchestrator import cache
    from orchestrator.kernel import source
    tree = source.default_tree(cache.default_cache_root(), say=lambda *_: None)
    scratch = _SCRATCH.get(tree.path)
    if scratch is None:
        scratch = pathlib.Path(tempfile.mkdtemp(prefix="kto-series-")) / "tree"
        git(tree.path, "worktree", "add", "-q", "--detach", str(scratch), "HEAD")
        atexit.register(subprocess.run, ["git", "-C", str(tree.path), "worktree", "remove", "--force", str(scratch)],
                        capture_output=True)
        _SCRATCH[tree.path] = scratch
    else:
        git(scratch, "checkout", "-q", "-f", "--detach", git(tree.path, "rev-parse", "HEAD"))
        git(scratch, "clean", "-q", "-f", "-d", "-x")
    return scratch


def series_on_default_tree(out: pathlib.Path, name: str,
                           commits: list[tuple[str, list[tuple[str, str, str]]]],
                           cover: bool = False, base: bool = False) -> pathlib.Path:
    """An mbox of real patches against the default tree, made by committing each
    (subject, [(file, old text, new text)]) in the scratch worktree.
    base: the series names its base (git format-patch --base: base-commit:)."""
    scratch = scratch_worktree()
    for subject, edits in commits:
        for rel, old, new in edits:
            edit(scratch, rel, old, new)
        git(scratch, "add", "-A", "-f")   # the Debian tree's .gitignore ignores all but debian/
        git(scratch, "commit", "-qm", subject)
    # --thread: Message-IDs, as mails on a list have (a --reply answers them).
    args = ["format-patch", "--stdout", "--thread", f"HEAD~{len(commits)}"] + (["--cover-letter"] if cover else []) \
        + ([f"--base=HEAD~{len(commits)}"] if base else [])
    mbox = out / f"{name}.mbx"
    mbox.write_text(git(scratch, *args) + "\n")
    return mbox


REPO = pathlib.Path(__file__).resolve().parent.parent
# Read before any test runs: pytester points HOME elsewhere during its tests, and the
# runs they start must still use this machine's cache (tree, builds, ccache).
from orchestrator.cache import default_cache_root
CACHE_ROOT = default_cache_root()


# A kernel developer's shell: what they export for their own arm64 builds, and what an
# outer `make test ARCH=arm64 JOBS=2` hands down. None of it may reach an x86_64 run.
DEVELOPER_ENVIRONMENT = {"ARCH": "arm64", "CROSS_COMPILE": "aarch64-linux-gnu-", "LLVM": "1",
                         "KCFLAGS": "-Werror", "O": "/nonexistent/build", "QEMU": "backports",
                         "TRANSPORT": "ssh", "MAKEFLAGS": " -j8 -- ARCH=arm64 JOBS=2", "MAKELEVEL": "1"}


def run_orchestrator_test(results: pathlib.Path, *extra: str,
                          env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """`orchestrator test --arch x86_64` into `results`: the process and its wall time."""
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "orchestrator", "test", "--arch", "x86_64",
                        "--results-dir", str(results), "--cache-dir", str(CACHE_ROOT), *extra],
                       cwd=REPO, capture_output=True, text=True, timeout=3600,
                       env=None if env is None else {**os.environ, **env})
    return p, time.monotonic() - t0


@pytest.fixture(scope="session")
def e2e_first_run_proc(tmp_path_factory):
    """The default suites on x86_64 as `make test` runs them, once per session: the e2e
    module checks it, the pytest plugin's tests compare their runs with it."""
    results = tmp_path_factory.mktemp("results")
    # A case that hangs waits out its timeout: 150 s is 5 times the slowest x86_64 case.
    # Under a kernel developer's exported environment (checked in test_e2e_x86_64.py).
    p, seconds = run_orchestrator_test(results, "--case-timeout", "150", env=DEVELOPER_ENVIRONMENT)
    print(f"\n--- first run ({seconds:.0f}s, exit {p.returncode}) ---\n{p.stdout}\n{p.stderr[-3000:]}")
    return p, results / "latest"


@pytest.fixture(scope="session")
def e2e_first_run(e2e_first_run_proc) -> pathlib.Path:
    return e2e_first_run_proc[1]
