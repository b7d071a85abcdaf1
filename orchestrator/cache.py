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
import time
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


# How long a run waits for another's lock: longer than any build of one arch here (the
# slowest cold build measured took 18 min), short of waiting for ever on a wedged run.
LOCK_WAIT_SECONDS = 2 * 3600.0


@contextlib.contextmanager
def file_lock(path: pathlib.Path, what: str, on_wait=None,
              timeout: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """An exclusive flock, so two runs (or xdist workers) never build into one dir at once.
    The holder's pid is in the file; a wait says so every minute and ends after `timeout`
    with one sentence naming the holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        t0 = time.monotonic()
        said = -1
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                waited = time.monotonic() - t0
                f.seek(0)
                holder = f.read().strip() or "unknown"
                # The arches of one series run side by side in this process (series/lanes.py).
                who = "another arch of this run" if holder == str(os.getpid()) else f"another run (pid {holder})"
                if waited >= timeout:
                    raise OrchestratorError(
                        f"{who[0].upper()}{who[1:]} has held the lock on {what} for {waited / 60:.0f} min; "
                        f"let it finish or stop it, then retry (the lock is {path}).", ExitCode.INFRA_ERROR)
                # Not before a second: the holder writes its pid just after it takes the lock.
                if on_wait and waited >= 1.0 and int(waited // 60) != said:
                    said = int(waited // 60)
                    on_wait(f"waiting for {who} that holds the lock on {what}"
                            + (f" ({said} min so far)" if said else ""))
                time.sleep(1.0)
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
