"""Several arches one after another (two cores: never two kernel builds at once), one
arch's failure never stopping the next, and one table at the end."""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
import pathlib

from . import kernels
from ..series import versus_base
from .. import cache, model, pipeline
from ..arches import Arch
from ..errors import ExitCode, OrchestratorError
from ..suites.status import FAILING, PASSED, SKIPPED
from .spec import Cell
from ..progress import Progress, fmt_duration, printable



@dataclasses.dataclass
class Row:
    arch: str                  # the cell's name (arch-kernel) in a matrix spec
    code: int
    run: model.RunRecord | None   # None: the cell ended before its run started
    error: str = ""
    kernel: str = ""           # the cell's kernel name (matrix spec), for the kernel axis

    def cells(self) -> list[str]:
        """The table row; `arch` is the cell name for a matrix spec (arch-kernel)."""
        run = self.run
        cases = run.cases if run else []

        def stage(name: str) -> str:
            st = getattr(run.stages, name) if run else None
            if st is None:
                return "-"
            if st.state == "failed":
                return "FAILED"
            if st.reused:
                return "reused"
            return fmt_duration(st.seconds) if st.seconds is not None else st.state

        minutes = "-"
        if run and run.finished_at:
            span = dt.datetime.fromisoformat(run.finished_at) - dt.datetime.fromisoformat(run.started_at)
            minutes = f"{span.total_seconds() / 60:.1f}"
        return [self.arch, stage("build"), stage("boot"),
                str(sum(c.status in PASSED for c in cases)),
                str(sum(c.status in FAILING for c in cases)),
                str(sum(c.status in SKIPPED for c in cases)),
                str(len(run.splats) if run else 0), minutes,
                self.error or (run.verdict if run and run.verdict else "")]


HEADER = ["arch", "build", "boot", "passed", "failed", "unsupported", "splats", "minutes", "verdict"]


def render(rows: list[Row]) -> str:
    table = [HEADER] + [r.cells() for r in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER) - 1)]
    lines = []
    for r in table:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1][:90])
    return "\n".join(lines)


def _write_page(path: pathlib.Path, stamp: str, rows: list[Row], axis: list[dict], progress: Progress) -> None:
    """results/matrix-<stamp>.html: the table with each cell's report linked, and the
    kernel axis; a failure here costs the page, never the cells' results."""
    from ..results import report
    page_rows = []
    for r in rows:
        cells = dict(zip(HEADER, r.cells()))
        run_id = r.run.run_id if r.run else None
        linked = run_id and (path.parent / run_id / "report.html").is_file()
        page_rows.append({"name": r.arch, "arch": r.run.arch if r.run else "", "kernel": r.kernel,
                          "build": cells["build"], "boot": cells["boot"], "minutes": cells["minutes"],
                          "verdict": cells["verdict"],
                          "run": r.run,
                          "report": f"{run_id}/report.html" if linked else None})
    try:
        cache.atomic_write(path, report.render_matrix_html(stamp, page_rows, axis))
        progress.say(f"matrix page: {path}")
    except OSError as exc:
        progress.say(f"orchestrator: the matrix page {path} was not written ({exc.strerror})")


def run(arches: list[Arch], base: pipeline.TestOptions, progress: Progress) -> int:
    """`test --arch all`: the same options on every arch."""
    return _run_rows([(a.name, dataclasses.replace(base, arch=a.name), None, "") for a in arches],
                     base.results_root, progress)


def run_cells(cells: list[Cell], base: pipeline.TestOptions, progress: Progress) -> int:
    """`matrix --spec matrix.yaml`: each cell with its own kernel, series, suites, timeouts."""
    jobs = []
    for c in cells:
        opts = dataclasses.replace(base, arch=c.arch, kernel=c.tree, suites=list(c.suites) or base.suites,
                                   cases=c.cases,
                                   extra_kconfigs=list(c.kconfig), case_timeout=c.case_timeout,
                                   boot_timeout=c.boot_timeout)
        sopts = versus_base.SeriesOptions(c.series, c.base, c.compare) if c.series else None
        jobs.append((c.name, opts, sopts, c.kernel_name))
    return _run_rows(jobs, base.results_root, progress)


def _run_rows(jobs: list[tuple[str, pipeline.TestOptions, "versus_base.SeriesOptions | None", str]],
              results_root, progress: Progress) -> int:
    rows: list[Row] = []
    arch_of = {name: opts.arch for name, opts, _, _ in jobs}
    for name, opts, sopts, kernel in jobs:
        progress.say(f"=== matrix: {name} ({len(rows) + 1}/{len(jobs)}) ===")
        try:
            if sopts is not None:
                code, run, _ = versus_base.run_series(opts, sopts, progress)
            else:
                code, run = pipeline.run_test(opts, progress)
            rows.append(Row(name, code, run, kernel=kernel))
        except OrchestratorError as exc:
            progress.say(f"orchestrator: {name}: {exc.message}")
            rows.append(Row(name, int(exc.code), exc.results, exc.message[:90], kernel=kernel))
        except Exception as exc:  # noqa: BLE001 - one cell's bug must not cost the other cells
            message = pipeline.internal_error(exc)
            progress.say(f"orchestrator: {name}: {message}")
            rows.append(Row(name, int(ExitCode.INFRA_ERROR), None, message[:90], kernel=kernel))
    table = render(rows)
    print("\n" + printable(table))
    axis = kernels.changes([(arch_of[r.arch], r.kernel, r.run) for r in rows if r.kernel and r.run])
    if axis:
        print("\nwhat each newer kernel changed, per arch:\n" + kernels.render(axis))
    # The pid too: two matrices finishing in the same second must not share one file.
    stamp = f"{dt.datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}"
    _write_page(results_root / f"matrix-{stamp}.html", stamp, rows, axis, progress)
    cache.atomic_write_json(results_root / f"matrix-{stamp}.json",
                            {"rows": [{"arch": r.arch, "exit_code": r.code, "run_id": r.run.run_id if r.run else None,
                                       "kernel": r.kernel or None,
                                       "cells": dict(zip(HEADER, r.cells()))} for r in rows],
                             "kernel_changes": axis})
    codes = [r.code for r in rows]
    if all(c == ExitCode.OK for c in codes):
        return int(ExitCode.OK)
    other = [c for c in codes if c not in (ExitCode.OK, ExitCode.TEST_FAILURES)]
    return other[0] if other else int(ExitCode.TEST_FAILURES)
