"""The results model and results/<run-id>/: written as results arrive, so a crash
(of the guest, of QEMU or of this program) loses nothing already measured."""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import pathlib
import time
from typing import Any

from .. import cache
from ..model import CaseResult
from ..suites import status
from ..suites.status import FAILING, STATUSES
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


def read_run(run_dir: pathlib.Path) -> dict | None:
    """A run's results.json when it has the shape the readers take (a file from a
    nightly's artifacts may be anything), else None. Nulls are dropped (every reader takes
    an absent value for its default); what is left must have the types the readers use."""
    data = cache.read_json(run_dir / "results.json")
    if not isinstance(data, dict):
        return None
    data = {k: v for k, v in data.items() if v is not None}
    for key in ("cases", "splats"):
        if isinstance(data.get(key), list):
            data[key] = [{k: v for k, v in e.items() if v is not None} if isinstance(e, dict) else e
                         for e in data[key]]

    def typed(d: dict, types: dict) -> bool:
        return all(k not in d or (isinstance(d[k], t) and not (t is not bool and isinstance(d[k], bool)))
                   for k, t in types.items())

    case_types = {"id": str, "suite": str, "status": str, "seconds": (int, float), "reason": str, "log": str,
                  "description": str, "splats": list, "test_status": str, "worker": str, "boot": int}
    if not isinstance(data.get("cases"), list) or not all(
            isinstance(c, dict) and typed(c, case_types) and {"id", "suite", "seconds"} <= set(c)
            and c.get("status") in STATUSES for c in data["cases"]):
        return None
    if not isinstance(data.get("splats", []), list) or not all(
            isinstance(s, dict) and typed(s, {"kind": str, "title": str, "case": str, "lines": list, "count": int})
            and {"kind", "title"} <= set(s) for s in data.get("splats", [])):
        return None
    top = {k: str for k in ("run_id", "arch", "label", "state", "verdict", "started_at", "finished_at")}
    top.update({k: dict for k in ("kernel", "versions", "accel", "boot_route", "taint", "config", "baseline",
                                  "first_cause", "stages", "series", "history", "counts")})
    top.update({"exit_code": int, "suites": list})
    if not typed(data, top) or not all(isinstance(s, dict) for s in data.get("stages", {}).values()):
        return None
    return data


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
