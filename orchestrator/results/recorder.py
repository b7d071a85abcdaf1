"""The results model and results/<run-id>/: written as results arrive, so a crash
(of the guest, of QEMU or of this program) loses nothing already measured."""
from __future__ import annotations

import datetime as dt
import functools
import json
import os
import pathlib
import stat
import time
from typing import Any

from .. import cache
from ..errors import ExitCode, OrchestratorError
from ..project import PROJECT_ROOT
from ..model import CaseResult
from ..suites import status
from ..suites.status import FAILING
from . import causes

SCHEMA_VERSION = 1


def guest_order(worker: str | None) -> tuple[str, int]:
    """The order several guests' consoles are joined into console.log: by name, g2 before
    g10 (gw0, gw1 of pytest-xdist; g1, g2 of --guests; None: the only guest)."""
    name = worker or ""
    digits = len(name) - len(name.rstrip("0123456789"))
    return (name[:len(name) - digits], int(name[len(name) - digits:]) if digits else -1)


def new_run_id(arch: str) -> str:
    return f"{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}-{arch}-{os.getpid()}"


def point_latest(root: pathlib.Path, run_id: str) -> None:
    """results/latest -> the newest run (replaced atomically)."""
    link = root / "latest"
    tmp = root / f".latest.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_id)
        os.replace(tmp, link)
    except OSError:
        pass


class Recorder:
    """Owns results/<run-id>/ and rewrites results.json atomically on every change."""

    def __init__(self, results_root: pathlib.Path, run_id: str, meta: dict[str, Any]):
        self.dir = results_root / run_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "run_id": run_id,
            "state": "running",
            "started_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "finished_at": None,
            **meta,
            "stages": {},
            "cases": [],
            "splats": [],
            "verdict": None,
            "exit_code": None,
        }
        self._stage_t0: dict[str, float] = {}
        self.flush()
        point_latest(results_root, run_id)

    @property
    def cases(self) -> list[dict]:
        return self.data["cases"]

    def flush(self) -> None:
        cache.atomic_write_json(self.dir / "results.json", self.data)


    def stage_started(self, name: str) -> None:
        from .. import PROCESS_START
        now = time.monotonic()
        self._stage_t0[name] = now
        self.data["stages"][name] = {"state": "running", "seconds": None,
                                     "at": round(now - PROCESS_START, 2)}
        self.flush()

    def stage_finished(self, name: str, state: str = "done", seconds: float | None = None,
                       **info: Any) -> None:
        """seconds: as measured elsewhere (the pytest workers' parts); else since
        stage_started, or None for a stage that never started here."""
        if seconds is None and name in self._stage_t0:
            seconds = time.monotonic() - self._stage_t0[name]
        at = self.data["stages"].get(name, {}).get("at")
        self.data["stages"][name] = {"state": state, "seconds": None if seconds is None else round(seconds, 2),
                                     "at": at, **info}
        self.flush()

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.flush()

    def add_case(self, case: CaseResult) -> None:
        self.cases.append(case.as_dict())
        self.flush()

    def finish(self, state: str, verdict: str, exit_code: int) -> None:
        for case in self.cases:
            case["cause"] = causes.of(case, self.data)
        self.data.update(state=state, verdict=verdict, exit_code=exit_code,
                         finished_at=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                         counts=status.counts(self.cases))
        self.flush()


# The one definition of results.json's shape (the recorder writes it, load_run checks it).
RESULTS_SCHEMA = PROJECT_ROOT / "schema" / "results.schema.json"
# A results.json of 63 cases is ~50 KB; a run of every ftrace case with long logs, a few MB.
MAX_RESULTS_BYTES = 64 << 20


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema
    schema = json.loads(RESULTS_SCHEMA.read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def load_run(run_dir: pathlib.Path) -> dict:
    """A run's results.json, checked against schema/results.schema.json: the one way a
    run comes back in (report, --rerun, --baseline, shell, a series' cached base). One
    sentence naming the file and the field otherwise (exit 2). Read bounded: a regular
    file of at most MAX_RESULTS_BYTES. Nulls are dropped (every reader takes an absent
    value for its default)."""
    import jsonschema
    path = run_dir / "results.json"

    def refuse(why: str) -> OrchestratorError:
        return OrchestratorError(f"{path}: {why}; give a run directory this tool wrote "
                                 "(results/<date>-<time>-<arch>-<pid>).", ExitCode.BAD_INPUT)

    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise refuse("not a regular file")
        if st.st_size > MAX_RESULTS_BYTES:
            raise refuse(f"{st.st_size} bytes, more than a run writes ({MAX_RESULTS_BYTES >> 20} MiB at most)")
        with open(path, "rb") as f:
            raw = f.read(MAX_RESULTS_BYTES + 1)
    except OSError as exc:
        raise refuse(exc.strerror or "cannot be read") from exc
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise refuse(f"not UTF-8 (byte {exc.start})") from exc
    except ValueError as exc:
        raise refuse(f"not JSON ({str(exc)[:80]})") from exc
    error = jsonschema.exceptions.best_match(_validator().iter_errors(data))
    if error is not None:
        where = error.json_path.removeprefix("$").lstrip(".") or "the top level"
        raise refuse(f"{where}: {error.message[:160]}")
    data = {k: v for k, v in data.items() if v is not None}
    for key in ("cases", "splats"):
        data[key] = [{k: v for k, v in e.items() if v is not None} for e in data.get(key, [])]
    return data


def read_run(run_dir: pathlib.Path) -> dict | None:
    """load_run, or None for a run that is not readable: for readers that look through
    many runs and pass over what is not one (a nightly's artifacts may be anything)."""
    try:
        return load_run(run_dir)
    except OrchestratorError:
        return None


def failures_after_poisoning_splat(data: dict) -> dict | None:
    """The first splat that poisons the kernel (ftrace bug, Oops...) and the failing cases
    that ran after it in the same boot: a developer should look at it first."""
    from ..suites.splats import POISONING_KINDS
    ids = [c["id"] for c in data.get("cases", [])]
    for splat in data.get("splats", []):
        if splat["kind"] in POISONING_KINDS and splat.get("case") in ids:
            start = ids.index(splat["case"])
            # The same guest: the same boot of the same worker (pytest-xdist runs several).
            guest = (data["cases"][start].get("boot", 1), data["cases"][start].get("worker"))
            later = [c["id"] for c in data["cases"][start + 1:]
                     if c["status"] in FAILING and (c.get("boot", 1), c.get("worker")) == guest]
            return {"case": splat["case"], "kind": splat["kind"], "title": splat["title"],
                    "failing_after": later}
    return None
