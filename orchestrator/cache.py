"""The cache directory (kernel trees, build dirs, images, ccache), locks and atomic writes.

Nothing here lives in the repository: kernel trees and build output are large and
belong to the machine, not to git.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import pathlib
import tempfile
from typing import Any, Iterator

from .errors import ExitCode, OrchestratorError


def default_cache_root() -> pathlib.Path:
    env = os.environ.get("ORCHESTRATOR_CACHE")
    if env:
        return pathlib.Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return pathlib.Path(xdg).resolve() / "orchestrator"


def digest(*parts: str | bytes) -> str:
    """A stable hash of several parts, each length-prefixed so parts cannot run together."""
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def file_digest(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def disk_error(path: pathlib.Path, exc: OSError) -> OrchestratorError:
    if exc.errno == errno.ENOSPC:
        return OrchestratorError(
            f"No space left on the disk holding {path}; free space there or point "
            "ORCHESTRATOR_CACHE / --results-dir at a disk with room.", ExitCode.INFRA_ERROR)
    return OrchestratorError(f"Cannot write {path}: {exc.strerror}; check that the "
                             "directory exists and is writable.", ExitCode.INFRA_ERROR)


def atomic_write(path: pathlib.Path, data: str | bytes) -> None:
    """Write to a temp file in the same directory, fsync, rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise disk_error(path, exc) from exc


def atomic_write_json(path: pathlib.Path, obj: Any) -> None:
    atomic_write(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: pathlib.Path) -> Any | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def file_lock(path: pathlib.Path, what: str, on_wait=None) -> Iterator[None]:
    """An exclusive flock, so two runs (or xdist workers) never build into one dir at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait(f"waiting for another run that holds the lock on {what}")
            fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
