"""Several arches one after another (two cores: never two kernel builds at once), one
arch's failure never stopping the next, and one table at the end."""
from __future__ import annotations

import dataclasses
import datetime as dt

from . import cache, pipeline
from .arches import Arch
from .errors import ExitCode, OrchestratorError
from .ktap import FAILING
from .progress import Progress, fmt_duration

_UNSUPPORTED = {"UNSUPPORTED", "UNTESTED", "SKIP"}


@dataclasses.dataclass
class Row:
    arch: str
    code: int
    data: dict
    error: str = ""

    def cells(self) -> list[str]:
        d = self.data
        stages = d.get("stages", {})
        cases = d.get("cases", [])

        def stage(name: str) -> str:
            st = stages.get(name)
            if not st:
                return "-"
            if st.get("state") == "failed":
                return "FAILED"
            if st.get("reused"):
                return "reused"
            return fmt_duration(st["seconds"]) if st.get("seconds") is not None else st.get("state", "?")

        minutes = "-"
        if d.get("started_at") and d.get("finished_at"):
            span = dt.datetime.fromisoformat(d["finished_at"]) - dt.datetime.fromisoformat(d["started_at"])
            minutes = f"{span.total_seconds() / 60:.1f}"
        return [self.arch, stage("build"), stage("boot"),
                str(sum(c["status"] in ("PASS", "XFAIL") for c in cases)),
                str(sum(c["status"] in FAILING for c in cases)),
                str(sum(c["status"] in _UNSUPPORTED for c in cases)),
                str(len(d.get("splats", []))), minutes,
                self.error or (d.get("verdict") or "")]


HEADER = ["arch", "build", "boot", "passed", "failed", "unsupported", "splats", "minutes", "verdict"]


def render(rows: list[Row]) -> str:
    table = [HEADER] + [r.cells() for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER) - 1)]
    lines = []
    for r in table:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1][:90])
    return "\n".join(lines)


def run(arches: list[Arch], base: pipeline.TestOptions, progress: Progress) -> int:
    rows: list[Row] = []
    for arch in arches:
        progress.say(f"=== matrix: {arch.name} ({len(rows) + 1}/{len(arches)}) ===")
        opts = dataclasses.replace(base, arch=arch.name)
        try:
            code, data = pipeline.run_test(opts, progress)
            rows.append(Row(arch.name, code, data))
        except OrchestratorError as exc:
            progress.say(f"orchestrator: {arch.name}: {exc.message}")
            rows.append(Row(arch.name, int(exc.code), getattr(exc, "results", {}), exc.message[:90]))
    table = render(rows)
    print("\n" + table)
    cache.atomic_write_json(base.results_root / f"matrix-{dt.datetime.now():%Y%m%d-%H%M%S}.json",
                            {"rows": [{"arch": r.arch, "exit_code": r.code, "run_id": r.data.get("run_id"),
                                       "cells": dict(zip(HEADER, r.cells()))} for r in rows]})
    codes = [r.code for r in rows]
    if all(c == ExitCode.OK for c in codes):
        return int(ExitCode.OK)
    other = [c for c in codes if c not in (ExitCode.OK, ExitCode.TEST_FAILURES)]
    return other[0] if other else int(ExitCode.TEST_FAILURES)
