"""The results model and results/<run-id>/: written as results arrive, so a crash
(of the guest, of QEMU or of this program) loses nothing already measured."""
from __future__ import annotations

import datetime as dt
import os
import pathlib
import re
import stat
import threading
import time
import typing
from typing import Any

import msgspec

from .. import cache, model
from ..errors import ExitCode, OrchestratorError
from ..model import CaseResult
from ..project import PROJECT_ROOT
from ..suites import status
from ..suites.status import FAILING
from . import causes

SCHEMA_VERSION = model.SCHEMA_VERSION


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
    tmp = root / f".latest.{os.getpid()}.{threading.get_ident()}"   # arches side by side: a thread each
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_id)
        os.replace(tmp, link)
    except OSError:
        pass


class Recorder:
    """Owns results/<run-id>/ and rewrites results.json atomically on every change. What
    it holds is a model.RunRecord: every value set is checked against the model as it
    comes in, so a wrong shape fails where it is made, not in a reader later."""

    def __init__(self, results_root: pathlib.Path, run_id: str, meta: dict[str, Any]):
        self.dir = results_root / run_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.record: model.RunRecord = model.convert({
            "schema_version": model.SCHEMA_VERSION, "run_id": run_id, "state": "running",
            "started_at": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "finished_at": None, "series": None, "suites": [], "fragments": [], "accel": None,
            "config": None, "taint": None, "verdict": None, "exit_code": None,
            "stages": {}, "cases": [], "splats": [], **meta}, model.RunRecord)
        self._stage_t0: dict[str, float] = {}
        self.flush()
        point_latest(results_root, run_id)

    @property
    def cases(self) -> list[CaseResult]:
        return self.record.cases

    def flush(self) -> None:
        _write(self.dir, self.record)

    def stage_started(self, name: str) -> None:
        from .. import PROCESS_START
        now = time.monotonic()
        self._stage_t0[name] = now
        setattr(self.record.stages, name, model.Stage(state="running", at=round(now - PROCESS_START, 2)))
        self.flush()

    def stage_finished(self, name: str, state: str = "done", seconds: float | None = None,
                       **info: Any) -> None:
        """seconds: as measured elsewhere (the pytest workers' parts); else since
        stage_started, or None for a stage that never started here. info: model.Stage's
        other fields."""
        if seconds is None and name in self._stage_t0:
            seconds = time.monotonic() - self._stage_t0[name]
        started = getattr(self.record.stages, name)
        setattr(self.record.stages, name, model.convert(
            {"state": state, "seconds": None if seconds is None else round(seconds, 2),
             "at": started.at if started else None, **info}, model.Stage))
        self.flush()

    def set(self, key: str, value: Any) -> None:
        """One field of the record: a model value, or plain values of its shape."""
        setattr(self.record, key, model.convert(value, _FIELD_TYPES[key]))
        self.flush()

    def set_versions(self, **lines: str) -> None:
        """Version lines learned on the way (the toolchain after the build, busybox...)."""
        self.record.versions = msgspec.structs.replace(self.record.versions, **lines)
        self.flush()

    def add_case(self, case: CaseResult) -> None:
        self.record.cases.append(case)
        self.flush()

    def finish(self, state: str, verdict: str, exit_code: int) -> None:
        record = self.record
        for case in record.cases:
            case.cause = causes.of(case, record)
        record.state, record.verdict, record.exit_code = state, verdict, exit_code
        record.finished_at = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        record.counts = status.counts(record.cases)
        self.flush()


_FIELD_TYPES = typing.get_type_hints(model.RunRecord, include_extras=True)


def _write(run_dir: pathlib.Path, record: model.RunRecord) -> None:
    cache.atomic_write(run_dir / "results.json",
                       msgspec.json.format(model.encode(record), indent=2) + b"\n")


def write_run(run_dir: pathlib.Path, run: model.RunRecord) -> None:
    """A run read back with load_run, written again with what was added to it (a cached
    base's compiler warnings)."""
    _write(run_dir, run)


def write_comparison(compare_dir: pathlib.Path, comparison: model.Comparison) -> None:
    cache.atomic_write(compare_dir / "compare.json",
                       msgspec.json.format(model.encode(comparison), indent=2) + b"\n")

# The schema generated from the model (python -m orchestrator.model), for other tools.
RESULTS_SCHEMA = PROJECT_ROOT / "schema" / "results.schema.json"
# A results.json of 63 cases is ~50 KB; a run of every ftrace case with long logs, a few MB.
MAX_RESULTS_BYTES = 64 << 20


def _load(path: pathlib.Path, kind: type, give: str, upgrade=None):
    """path as a `kind` of the model, or one sentence naming the file and the field and
    what to give instead (exit 2). Read bounded: a regular file of at most
    MAX_RESULTS_BYTES. upgrade: turns the JSON of an older version into this one's."""
    def refuse(why: str) -> OrchestratorError:
        return OrchestratorError(f"{path}: {why}; give {give}.", ExitCode.BAD_INPUT)

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
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise refuse(f"not UTF-8 (byte {exc.start})") from exc
    try:
        try:
            return model.decode(raw, kind)
        except msgspec.ValidationError:
            if upgrade is None:
                raise
            # Written by an older version? The slower path, whose error (if any) is about
            # the file as this version reads it.
            return model.convert(upgrade(msgspec.json.decode(raw)), kind)
    except msgspec.ValidationError as exc:
        raise refuse(_field_error(str(exc))) from exc
    except msgspec.DecodeError as exc:
        raise refuse(f"not JSON ({str(exc)[:80]})") from exc


def load_run(run_dir: pathlib.Path) -> model.RunRecord:
    """A run's results.json, checked against the model (orchestrator/model.py): the one
    way a run comes back in (report, --rerun, --baseline, shell, a series' cached base)."""
    return _load(run_dir / "results.json", model.RunRecord,
                 "a run directory this tool wrote (results/<date>-<time>-<arch>-<pid>)", _upgrade_run)


def is_comparison(path: pathlib.Path) -> bool:
    """results/<id>-compare: a series run compared with its base (compare.json, and the
    base and series run dirs linked as base/ and series/), where results/latest points
    after a series run."""
    return not (path / "results.json").exists() and (path / "compare.json").is_file() \
        and (path / "series" / "results.json").is_file() and (path / "base" / "results.json").is_file()


def _upgrade_diff(diff: object) -> None:
    """A Diff as written before 2026-12-06: coverage_lost was newly_unsupported, and each
    added warning a "file:line: message" string."""
    if not isinstance(diff, dict):
        return
    if "newly_unsupported" in diff and "coverage_lost" not in diff:
        diff["coverage_lost"] = diff.pop("newly_unsupported")
    added = diff.get("warnings_added")
    if isinstance(added, list):
        for i, entry in enumerate(added):
            m = _OLD_WARNING.match(entry) if isinstance(entry, str) else None
            if m:
                added[i] = {"file": m["file"], "line": int(m["line"]), "message": m["message"]}


_OLD_WARNING = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<message>.*)$", re.S)


def _upgrade_comparison(doc: object) -> object:
    _upgrade_diff(doc.get("diff") if isinstance(doc, dict) else None)
    return doc


def _upgrade_run(doc: object) -> object:
    baseline = doc.get("baseline") if isinstance(doc, dict) else None
    _upgrade_diff(baseline.get("diff") if isinstance(baseline, dict) else None)
    return doc


def read_comparison(path: pathlib.Path) -> model.Comparison:
    """A comparison dir's compare.json (--reply, report); exit 2 with the field otherwise."""
    return _load(path / "compare.json", model.Comparison,
                 "a results/<id>-compare directory of a series run", _upgrade_comparison)


def load_comparison(path: pathlib.Path) -> tuple[model.Comparison, list[tuple[model.RunRecord, pathlib.Path]]]:
    """A comparison dir's compare.json and its base and series runs, each loaded as every
    run is; one sentence naming the file and the field otherwise (exit 2)."""
    comparison = read_comparison(path)
    sides = [(path / side).resolve() for side in ("base", "series")]
    return comparison, [(load_run(d), d) for d in sides]


def _field_error(message: str) -> str:
    """msgspec's "Expected `str`, got `int` - at `$.cases[3].status`" as
    "cases[3].status: expected `str`, got `int`"."""
    what, _, where = message.partition(" - at `")
    where = where.rstrip("`").removeprefix("$").lstrip(".") or "the top level"
    return f"{where}: {what[:1].lower()}{what[1:160]}"


def read_run(run_dir: pathlib.Path) -> model.RunRecord | None:
    """load_run, or None for a run that is not readable: for readers that look through
    many runs and pass over what is not one (a nightly's artifacts may be anything)."""
    try:
        return load_run(run_dir)
    except OrchestratorError:
        return None


def failures_after_poisoning_splat(run: model.RunRecord) -> model.FirstCause | None:
    """The first splat that poisons the kernel (ftrace bug, Oops...) and the failing cases
    that ran after it in the same boot: a developer should look at it first."""
    from ..suites.splats import POISONING_KINDS
    ids = [c.id for c in run.cases]
    for splat in run.splats:
        if splat.kind in POISONING_KINDS and splat.case in ids:
            start = ids.index(splat.case)
            # The same guest: the same boot of the same worker (pytest-xdist runs several).
            first = run.cases[start]
            later = [c.id for c in run.cases[start + 1:]
                     if c.status in FAILING and (c.boot, c.worker) == (first.boot, first.worker)]
            return model.FirstCause(case=splat.case, kind=splat.kind, title=splat.title, failing_after=later)
    return None
