"""`orchestrator report RUN [RUN...]`: the report pages made again from results.json alone,
and several runs (one per arch from separate CI jobs) merged into one report.html, one
junit.xml and one summary.txt."""
from __future__ import annotations

import pathlib

from .. import cache
from ..results import confirm, history_chart, report
from ..errors import ExitCode, OrchestratorError
from ..model import RunRecord
from ..results.recorder import is_comparison, load_comparison, load_run


def regressions(runs: list[tuple[RunRecord, pathlib.Path]]) -> list[str]:
    """One line per run that did not complete, or that got worse than its baseline."""
    out = []
    for run, _ in runs:
        if run.state != "complete":
            out.append(f"{run.run_id}: {run.state}: {run.verdict}")
            continue
        diff = run.baseline.diff if run.baseline else None
        if diff and diff.regressed:
            what = [e.id for e in (*diff.new_failures, *diff.likely_regressions, *diff.coverage_lost,
                                   *diff.new_cases_failing)] + \
                   [s.title for s in diff.new_splats] + [w.text() for w in diff.warnings_added]
            out.append(f"{run.run_id}: worse than {run.baseline.run_id} "
                       f"({', '.join(confirm.regression_kinds(diff))}): {'; '.join(what)[:300]}")
    return out


def run(run_dirs: list[pathlib.Path], out: pathlib.Path | None, fail_on_regression: bool,
        say=print, history_dir: pathlib.Path | None = None) -> int:
    """history_dir: earlier runs (any depth) drawn over time; with no run_dirs, the report
    is of the newest run of each arch x kernel there."""
    if history_dir is not None and not history_dir.is_dir():
        raise OrchestratorError(f"--history {history_dir} is not a directory; give the directory that "
                                "holds the earlier runs (the nightly's artifacts).")
    newest = []
    if history_dir is not None and not run_dirs:
        found = history_chart.collect(history_dir.resolve(), history_dir.resolve())
        if not found:
            raise OrchestratorError(f"--history {history_dir} holds no run (no results.json under it); "
                                    "give the directory the nightly's artifacts were unpacked into.")
        newest = [h.points[-1].run_dir for h in found]
        if out is None:
            raise OrchestratorError("A report over a history of runs needs its own directory: name it with --out.")
    dirs = [d.resolve() for d in run_dirs] or newest
    comparison = None
    series_compared = len(dirs) == 1 and is_comparison(dirs[0])
    if series_compared:
        # A series run's results/latest: its base and series side by side, what changed first.
        compared, runs = load_comparison(dirs[0])
        comparison = compared.diff
    else:
        for d in dirs:
            if is_comparison(d):
                raise OrchestratorError(f"{d} is a series' comparison (base and series): report it on its own, "
                                        f"or give its runs {d / 'base'} and {d / 'series'} to merge.")
        runs = [(load_run(d), d) for d in dirs]
    target = out if out is not None else (dirs[0] if len(dirs) == 1 else None)
    if target is None:
        raise OrchestratorError("Several runs are merged into one report: name its directory with --out.")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OrchestratorError(f"Cannot create {target} ({exc.strerror}); give --out a writable "
                                "directory.", ExitCode.INFRA_ERROR) from exc
    only = runs[0][0] if len(runs) == 1 else None
    if only is not None and only.baseline:
        comparison = only.baseline.diff
    charts = history_chart.collect(history_dir.resolve(), target.resolve()) if history_dir is not None else None
    report.write_html(target / "report.html", runs, comparison, charts)
    if charts:
        say(f"report: history of {sum(len(h.points) for h in charts)} run(s) over {len(charts)} arch x kernel chart(s)")
    report.merge_junit([r for r, _ in runs], target / "junit.xml")
    if series_compared and out is None:
        # Its summary.txt is the comparison's text for the reply: kept as the series run wrote it.
        say(f"report: the comparison of {runs[1][0].run_id} with {runs[0][0].run_id} -> "
            f"{target / 'report.html'}, junit.xml")
    else:
        cache.atomic_write(target / "summary.txt", report.summary_text([r for r, _ in runs]) + "\n")
        say(f"report: {len(runs)} run(s) -> {target / 'report.html'}, junit.xml, summary.txt")
    bad = regressions(runs)
    if series_compared and comparison.regressed:
        bad.append(f"{runs[1][0].run_id}: worse than its base {runs[0][0].run_id} "
                   f"({', '.join(confirm.regression_kinds(comparison))})")
    for line in bad:
        say(f"  regressed: {line}")
    return int(ExitCode.TEST_FAILURES) if fail_on_regression and bad else int(ExitCode.OK)
