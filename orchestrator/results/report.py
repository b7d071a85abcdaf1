"""Reports people read, from runs' records (orchestrator/model.py): one offline HTML page over one or more
runs (arch x case matrix, why each case did not pass, splats, config drops, stage
timings, versions; what a series changed first when there is a comparison), a short
plain text for a mailing-list reply, and one JUnit XML for several runs."""
from __future__ import annotations

import os
import pathlib
import re
import textwrap
import xml.etree.ElementTree as ET
from typing import Any

import jinja2
import markupsafe

from .. import cache
from ..kernel import buildwarn
from ..errors import OrchestratorError
from ..model import CaseResult, Diff, RunRecord, Stages
from ..progress import cut_at_word, printable
from . import causes, compare, confirm, history, history_chart, junit, ktap_out
from .recorder import Recorder, guest_order
from .summary import built_line, checkpatch_lines, slowest_line
from ..suites.case_id import INSTANCE_SUFFIX, CaseId
from ..suites.splats import decoded_lines, grouped, no_case_label
from ..suites.status import FAILING, STATUSES, counts, counts_line
_CONSOLE_CAP = 80          # console lines shown per case
_CONSOLE_HEAD = 30         # of which from the start of the case's region
# summary.txt is read on terminals and quoted in mail: its case lines stay within this.
SUMMARY_WIDTH = 80
# A reason or title longer than this is shortened (at a word) before it is wrapped.
REASON_MAX = 240
_MARKER = re.compile(r"KTO:(BEGIN|END):([0-9A-Za-z]+):(\d+)")
_READY = "KTO:READY:"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")



def _printable(value: Any) -> Any:
    """Every text the page shows: control characters (a console may print any) as \\xNN,
    since HTML cannot hold most; autoescape then escapes the rest."""
    if isinstance(value, str) and not isinstance(value, markupsafe.Markup):
        return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", value.replace("\r", ""))
    return value


_env = jinja2.Environment(
    loader=jinja2.PackageLoader("orchestrator.results", "templates"),
    autoescape=True,            # results.json and console.log hold arbitrary text
    finalize=_printable,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True, lstrip_blocks=True,
)
_env.globals["no_case_label"] = no_case_label


def _labels(runs: list[RunRecord]) -> list[str]:
    """A column name per run: the arch, with the run's label (or id) when an arch repeats."""
    arches = [r.arch for r in runs]
    return [a if arches.count(a) == 1 else f"{a}-{r.label or r.run_id}" for a, r in zip(arches, runs)]


# -- the console region of each case --------------------------------------------------

def _regions(lines: list[str]) -> list[tuple[str, int, int, int]]:
    """(nonce, seq, first line, end line) of every KTO:BEGIN..KTO:END region. A region
    cut short by a reboot ends where the next boot's kernel starts printing."""
    out: list[tuple[str, int, int, int]] = []
    open_: tuple[str, str, int] | None = None     # nonce, seq, start

    def close(end: int) -> None:
        nonlocal open_
        if open_ is not None:
            out.append((open_[0], int(open_[1]), open_[2], end))
            open_ = None

    def boot_start(before: int) -> int:
        assert open_ is not None
        for i in range(before - 1, open_[2], -1):
            if "Linux version" in lines[i]:
                return i
        return before

    for i, line in enumerate(lines):
        if _READY in line:
            if open_ is not None:
                close(boot_start(i))
            continue
        m = _MARKER.search(line)
        if not m:
            continue
        kind, nonce, seq = m.groups()
        if kind == "BEGIN":
            if open_ is not None:
                close(boot_start(i) if open_[0] != nonce else i)
            open_ = (nonce, seq, i)
        elif open_ is not None and (nonce, seq) == open_[:2]:
            close(i + 1)
    close(len(lines))
    return out


def case_console(console: str, cases: list[CaseResult]) -> dict[int, list[str]]:
    """Console lines of each case (by index in `cases`). Each boot prints one nonce and
    numbers its commands 1, 2...; the cases of a boot are its last commands (the first
    boot runs one more before them), a case and its "(instance)" twin sharing one. A case
    whose KTAP description is not in the region found for it shows the order is off: its
    whole boot then gets nothing (the caller shows the case's own log instead)."""
    lines = console.replace("\r", "").split("\n")    # the serial console ends lines with \r\r\n
    by_nonce: dict[str, dict[int, tuple[int, int]]] = {}
    for nonce, seq, start, end in _regions(lines):
        by_nonce.setdefault(nonce, {})[seq] = (start, end)
    # (guest, boot) -> groups of case indexes: several guests' consoles are joined
    # into one file in guest_order, each guest's boots in turn.
    by_boot: dict[tuple[str | None, int], list[list[int]]] = {}
    last_id = None
    for i, c in enumerate(cases):
        groups = by_boot.setdefault((c.worker, c.boot), [])
        case_id = CaseId.parse(c.id)
        base = case_id.test
        if groups and last_id == base and case_id.instance:
            groups[-1].append(i)
        else:
            groups.append([i])
        last_id = base
    out: dict[int, list[str]] = {}
    if len(by_nonce) != len(by_boot):
        return out
    for regions, boot in zip(by_nonce.values(), sorted(by_boot, key=lambda k: (guest_order(k[0]), k[1]))):
        groups = by_boot[boot]
        first = max(regions) - len(groups) + 1
        found: dict[int, list[str]] = {}
        for k, group in enumerate(groups):
            if first + k not in regions:
                continue
            start, end = regions[first + k]
            for i in group:
                found[i] = lines[start:end]
        if all(cases[i].description.removesuffix(INSTANCE_SUFFIX) in "\n".join(region)
               for i, region in found.items() if cases[i].description != cases[i].id):
            out.update(found)
    return out


def _capped(lines: list[str], cap: int = _CONSOLE_CAP, head: int = _CONSOLE_HEAD) -> list[str]:
    if len(lines) <= cap:
        return lines
    tail = cap - head - 1
    return lines[:head] + [f"[... {len(lines) - head - tail} lines not shown ...]"] + lines[-tail:]


# -- the page --------------------------------------------------------------------------

def _stage_bars(stages: Stages) -> dict[str, Any]:
    """Bars for an inline SVG (widths in px, proportional to seconds) and the errors of
    failed stages with their first compiler errors or console tail; in the order they
    started (the builtin boot route makes its image first)."""
    started = stages.started()
    rows = [(name, float(s.seconds), s.state, bool(s.reused))
            for name, s in started if s.seconds is not None]
    top = max([r[1] for r in rows] + [0.001])
    bar_w, row_h = 420, 22
    return {"width": 120 + bar_w + 140, "height": row_h * len(rows) + 4, "bars": [
        {"name": name, "seconds": sec, "state": state, "reused": reused,
         "y": 2 + k * row_h, "w": round(max(1.0, sec / top * bar_w), 1)}
        for k, (name, sec, state, reused) in enumerate(rows)],
        "errors": [{"name": name, "error": s.error or "",
                    "detail": "\n".join(s.first_errors or s.console_tail or [])}
                   for name, s in started if s.state == "failed"]}


def _run_view(run: RunRecord, run_dir: pathlib.Path | None, label: str) -> dict[str, Any]:
    """What the page shows of one run; the template reads plain values (as_dict)."""
    cases = run.cases
    console_file = run_dir / "console.log" if run_dir else None
    console = (console_file.read_bytes().decode("utf-8", errors="replace")
               if console_file and console_file.is_file() else "")
    regions = case_console(console, cases) if console else {}
    shown = []
    for i, c in enumerate(cases):
        if c.status == "PASS":
            continue
        region = regions.get(i)
        cause = causes.of(c, run)
        shown.append({
            "id": c.id, "status": c.status, "test_status": c.test_status,
            "reason": c.reason, "seconds": c.seconds, "boot": c.boot, "log": c.log,
            "console": "\n".join(_capped(region)) if region is not None else None,
            "log_tail": "\n".join(_capped(c.log.split("\n"), head=0)) if region is None else None,
            "splats": [s.title for s in c.splats],
            "cause": cause.as_dict() if cause else None,
        })

    def plain(part: Any) -> dict:
        return {k: v for k, v in part.as_dict().items() if v is not None} if part is not None else {}
    return {
        "label": label, "data": run.as_dict(),
        "counts": counts(run.cases), "counts_line": counts_line(run),
        "kernel": plain(run.kernel), "versions": plain(run.versions),
        "accel": plain(run.accel), "boot_route": plain(run.boot_route),
        "series": run.series.as_dict() if run.series else None, "taint": plain(run.taint),
        "stages": _stage_bars(run.stages),
        "dropped": [d.as_dict() for d in run.config.dropped] if run.config else [],
        "cases": shown,
        "unexplained": sum(1 for c in shown if c["cause"] is None),
        "splats": [{**s.as_dict(), "lines": "\n".join(s.lines), "decoded": "\n".join(decoded_lines(s))}
                   for s in run.splats],
        "first_cause": run.first_cause.as_dict() if run.first_cause else None,
        "known_noise": [history.mark(c.id, c.status, run.history[c.id])
                        for c in cases if c.id in run.history],
    }


# A run's files the page links, in this order, where they exist.
RUN_FILES = ("console.log", "build.log", "config", "results.json", "junit.xml", "results.ktap", "reproduce.sh",
             "report.html")


def _links(run_dir: pathlib.Path | None, page_dir: pathlib.Path | None) -> list[dict[str, str]]:
    """{name, href} of the run's files, relative to the page (a run's own page, a merged
    one, a comparison's): the page itself is not linked."""
    if run_dir is None or page_dir is None:
        return []
    out = []
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_file() and not (name == "report.html" and run_dir.resolve() == page_dir.resolve()):
            out.append({"name": name, "href": os.path.relpath(path, page_dir)})
    return out


def render_html(runs: list[tuple[RunRecord, pathlib.Path | None]],
                comparison: Diff | None = None, history: list | None = None,
                page_dir: pathlib.Path | None = None) -> str:
    """One self-contained page for (run record, run dir) pairs; `comparison`,
    compare.compare()'s diff (compare.json's "diff"), comes first when given; `history`
    (history_chart.collect()'s), a chart per arch x kernel, after it. page_dir: where the
    page is written, for links to each run's files."""
    # A comparison's page is of (base, series), whatever each run was called when it ran
    # (a plain `make test` reused as a series' base has no label).
    labels = ["base", "series"] if comparison is not None and len(runs) == 2 else _labels([d for d, _ in runs])
    views = [_run_view(d, pathlib.Path(p) if p else None, lab) for (d, p), lab in zip(runs, labels)]
    for view, (_, p) in zip(views, runs):
        view["links"] = _links(pathlib.Path(p) if p else None, page_dir)
    case_ids: list[str] = []
    seen: set[str] = set()
    for r, _ in runs:
        for c in r.cases:
            if c.id not in seen:
                seen.add(c.id)
                case_ids.append(c.id)
    status_of = [{c.id: c.status for c in r.cases} for r, _ in runs]
    matrix = [{"id": cid, "cells": [s.get(cid) for s in status_of]} for cid in case_ids]
    for row in matrix:
        # Rows whose status is not the same in every run are what a reader looks for.
        row["differs"] = len(runs) > 1 and len(set(row["cells"])) > 1
    series = next((r.series for r, _ in runs if r.series), None)
    patches = len(series.patches) if series else 0
    return _env.get_template("report.html.j2").render(
        runs=views, matrix=matrix, comparison=comparison.as_dict() if comparison else None,
        warnings_added=compare.warning_lines(comparison.warnings_added, patches) if comparison else [],
        warning_level=buildwarn.LEVEL,
        patch_checks=checkpatch_lines(series.checkpatch, patches) if series else [],
        failing=sorted(FAILING), kinds=causes.KINDS,
        flaky=confirm.flaky_lines(comparison) if comparison else [],
        likely=confirm.likely_lines(comparison) if comparison else [],
        new_splats=[compare.splat_line(s) for s in comparison.new_splats] if comparison else [],
        failed_splats=[compare.splat_line(s) for s in comparison.series_failed.splats]
        if comparison and comparison.series_failed else [],
        regression_kinds=confirm.regression_kinds(comparison) if comparison else [],
        statuses=[s for s in STATUSES if any(v["counts"].get(s) for v in views)],
        history=[{"key": h.key, "points": h.points, "svg": history_chart.svg(h)} for h in history or []],
        history_legend=history_chart.legend())


def write_html(path: pathlib.Path, runs: list[tuple[RunRecord, pathlib.Path | None]],
               comparison: Diff | None = None, history: list | None = None) -> None:
    path = pathlib.Path(path)
    cache.atomic_write(path, render_html(runs, comparison, history, page_dir=path.parent))


def render_matrix_html(stamp: str, rows: list[dict], changes: list[dict]) -> str:
    """The matrix page: rows of {name, arch, kernel, build, boot, run, report, verdict,
    minutes} (run: the cell's RunRecord, None for a cell that ended before its run began;
    report: its report.html relative to the page), then per arch what each newer kernel
    changed (matrix/kernels.py)."""
    cells = []
    for r in rows:
        run: RunRecord | None = r["run"]
        cases = run.cases if run else []
        cells.append({**r, "counts": counts(cases), "splats": len(run.splats) if run else 0,
                      "unexplained": len(causes.unexplained(run)) if run and cases else ""})
    statuses = [s for s in STATUSES if any(c["counts"].get(s) for c in cells)]
    return _env.get_template("matrix.html.j2").render(stamp=stamp, rows=cells, changes=changes,
                                                      statuses=statuses)


def write_run_reports(recorder: Recorder) -> None:
    """The end of every run (make test, the pytest plugin's merge): junit.xml, results.ktap,
    report.html and summary.txt beside results.json. `orchestrator report` makes them again from
    results.json, so a failure here costs the pages, never the results."""
    run = recorder.record
    try:
        junit.write(run, recorder.dir / "junit.xml")
        ktap_out.write(run, recorder.dir / "results.ktap")
    except (OSError, OrchestratorError):
        pass   # a full disk: results.json (written first) is what counts
    try:
        write_html(recorder.dir / "report.html", [(run, recorder.dir)],
                   comparison=run.baseline.diff if run.baseline else None)
        cache.atomic_write(recorder.dir / "summary.txt", summary_text([run]) + "\n")
    except Exception as exc:  # noqa: BLE001 - any bug in the page must not cost the run's results
        print(f"orchestrator: the report pages of {recorder.dir} were not written ({exc}); "
              f"`orchestrator report {recorder.dir}` makes them from results.json.")


# -- text for a reply, JUnit for CI ---------------------------------------------------

def _wrapped(text: str, indent: str, more: str) -> list[str]:
    """One entry at SUMMARY_WIDTH columns, continued under `more`; a word longer than a
    line (a path, a symbol) is kept whole, never cut."""
    return textwrap.wrap(" ".join(text.split()), SUMMARY_WIDTH, initial_indent=indent, subsequent_indent=more,
                         break_long_words=False, break_on_hyphens=False) or [indent.rstrip()]


def summary_text(runs: list[RunRecord]) -> str:
    """Per run what ran (kernel, commit, QEMU and accelerator) and its counts, then each
    failing case and each splat with its decoded top frames; lines wrapped for a terminal
    or a mail at SUMMARY_WIDTH (a very long reason shortened at a word)."""
    out = []
    for run, label in zip(runs, _labels(runs)):
        qemu = re.search(r"version (\S+)", run.versions.qemu or "")
        accel = run.accel.name.upper() if run.accel else "not booted"
        commit = f" at {run.kernel.git_commit[:12]}" if run.kernel.git_commit else ""
        out += _wrapped(f"{label}: Linux {run.kernel.version}{commit}, QEMU {qemu.group(1) if qemu else '?'} "
                        f"{accel}", "", "    ")
        out.append(f"  {counts_line(run)}")
        out += _wrapped(f"tree: {run.kernel.origin}", "  ", "      ")
        if built := built_line(run):
            out += _wrapped(built, "  ", "      ")
        if slowest := slowest_line(run):
            out += _wrapped(slowest, "  ", "      ")
        for c in run.cases:
            if c.status in FAILING:
                out += _wrapped(f"{c.status} {c.id}: {cut_at_word(c.reason, REASON_MAX)}", "  ", "      ")
                cause = causes.of(c, run)
                if cause:
                    out += _wrapped(f"known cause, {cut_at_word(causes.line(cause), REASON_MAX)}", "    ", "        ")
        for s, times, cases in grouped(run.splats):
            out += _wrapped(f"splat {s.kind}{f' x{times}' if times > 1 else ''} during {', '.join(cases)}: "
                            f"{cut_at_word(s.title, REASON_MAX)}", "  ", "      ")
            for line in decoded_lines(s):
                out += _wrapped(line, "    ", "        ")
    return printable("\n".join(out)) + "\n"


def merge_junit(runs: list[RunRecord], path: pathlib.Path) -> None:
    """One JUnit document for several runs; suites are named `<arch>.<suite>` (with the
    run's label when an arch repeats)."""
    root = ET.Element("testsuites", name="orchestrator " + " ".join(r.run_id for r in runs))
    for run, label in zip(runs, _labels(runs)):
        root.extend(junit.testsuites(run, label))
    cache.atomic_write(pathlib.Path(path), junit.to_string(root))
