"""Reports people read, from results.json data: one offline HTML page over one or more
runs (arch x case matrix, why each case did not pass, splats, config drops, stage
timings, versions; what a series changed first when there is a comparison), a short
plain text for a mailing-list reply, and one JUnit XML for several runs."""
from __future__ import annotations

import pathlib
import re
import xml.etree.ElementTree as ET
from typing import Any

import jinja2
import markupsafe

from .. import cache
from ..errors import OrchestratorError
from . import causes, compare, confirm, history, history_chart, junit, ktap_out
from .recorder import Recorder, guest_order
from ..suites.case_id import INSTANCE_SUFFIX, CaseId
from ..suites.status import FAILING, STATUSES, counts, counts_line
_CONSOLE_CAP = 80          # console lines shown per case
_CONSOLE_HEAD = 30         # of which from the start of the case's region
_REASON_CUT = 120
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


def _cut(text: str, width: int = _REASON_CUT) -> str:
    line = " ".join((text or "").split())
    return line if len(line) <= width else line[:width - 3] + "..."


def _labels(runs: list[dict]) -> list[str]:
    """A column name per run: the arch, with the run's label (or id) when an arch repeats."""
    arches = [d.get("arch") or "unknown" for d in runs]
    return [a if arches.count(a) == 1 else f"{a}-{d.get('label') or d.get('run_id', i)}"
            for i, (a, d) in enumerate(zip(arches, runs))]


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


def case_console(console: str, cases: list[dict]) -> dict[int, list[str]]:
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
        groups = by_boot.setdefault((c.get("worker"), c.get("boot", 1)), [])
        case_id = CaseId.parse(c["id"])
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
        if all(cases[i]["description"].removesuffix(INSTANCE_SUFFIX) in "\n".join(region)
               for i, region in found.items() if cases[i]["description"] != cases[i]["id"]):
            out.update(found)
    return out


def _capped(lines: list[str], cap: int = _CONSOLE_CAP, head: int = _CONSOLE_HEAD) -> list[str]:
    if len(lines) <= cap:
        return lines
    tail = cap - head - 1
    return lines[:head] + [f"[... {len(lines) - head - tail} lines not shown ...]"] + lines[-tail:]


# -- the page --------------------------------------------------------------------------

def _stage_bars(stages: dict[str, Any]) -> dict[str, Any]:
    """Bars for an inline SVG (widths in px, proportional to seconds) and the errors of
    failed stages with their first compiler errors or console tail."""
    rows = [(name, float(s["seconds"]), s.get("state", ""), bool(s.get("reused")))
            for name, s in stages.items() if s.get("seconds") is not None]
    top = max([r[1] for r in rows] + [0.001])
    bar_w, row_h = 420, 22
    return {"width": 120 + bar_w + 140, "height": row_h * len(rows) + 4, "bars": [
        {"name": name, "seconds": sec, "state": state, "reused": reused,
         "y": 2 + k * row_h, "w": round(max(1.0, sec / top * bar_w), 1)}
        for k, (name, sec, state, reused) in enumerate(rows)],
        "errors": [{"name": name, "error": s.get("error", ""),
                    "detail": "\n".join(s.get("first_errors") or s.get("console_tail") or [])}
                   for name, s in stages.items() if s.get("state") == "failed"]}


def _run_view(data: dict, run_dir: pathlib.Path | None, label: str) -> dict[str, Any]:
    cases = data.get("cases", [])
    console_file = run_dir / "console.log" if run_dir else None
    console = (console_file.read_bytes().decode("utf-8", errors="replace")
               if console_file and console_file.is_file() else "")
    regions = case_console(console, cases) if console else {}
    shown = []
    for i, c in enumerate(cases):
        if c["status"] == "PASS":
            continue
        region = regions.get(i)
        log_lines = (c.get("log") or "").split("\n")
        shown.append({
            "id": c["id"], "status": c["status"], "test_status": c.get("test_status"),
            "reason": c.get("reason") or "", "seconds": c.get("seconds"),
            "boot": c.get("boot", 1), "log": c.get("log") or "",
            "console": "\n".join(_capped(region)) if region is not None else None,
            "log_tail": "\n".join(_capped(log_lines, head=0)) if region is None else None,
            "splats": [s.get("title", "") for s in c.get("splats", [])],
            "cause": causes.of(c, data),
        })
    return {
        "label": label, "data": data,
        "counts": counts(data.get("cases", [])), "counts_line": counts_line(data),
        "kernel": data.get("kernel") or {}, "versions": data.get("versions") or {},
        "accel": data.get("accel") or {}, "boot_route": data.get("boot_route") or {},
        "series": data.get("series"), "taint": data.get("taint") or {},
        "stages": _stage_bars(data.get("stages") or {}),
        "dropped": (data.get("config") or {}).get("dropped", []),
        "cases": shown,
        "unexplained": sum(1 for c in shown if c["cause"] is None),
        "splats": [{**s, "lines": "\n".join(s.get("lines", []))}
                   for s in data.get("splats", [])],
        "first_cause": data.get("first_cause"),
        "known_noise": [history.mark(c["id"], c["status"], (data.get("history") or {})[c["id"]])
                        for c in cases if c["id"] in (data.get("history") or {})],
    }


def render_html(runs: list[tuple[dict, pathlib.Path]],
                comparison: dict | None = None, history: list | None = None) -> str:
    """One self-contained page for (results.json data, run dir) pairs; `comparison`,
    compare.compare()'s diff (compare.json's "diff"), comes first when given; `history`
    (history_chart.collect()'s), a chart per arch x kernel, after it."""
    labels = _labels([d for d, _ in runs])
    views = [_run_view(d, pathlib.Path(p) if p else None, lab) for (d, p), lab in zip(runs, labels)]
    case_ids: list[str] = []
    seen: set[str] = set()
    for d, _ in runs:
        for c in d.get("cases", []):
            if c["id"] not in seen:
                seen.add(c["id"])
                case_ids.append(c["id"])
    status_of = [{c["id"]: c["status"] for c in d.get("cases", [])} for d, _ in runs]
    matrix = [{"id": cid, "cells": [s.get(cid) for s in status_of]} for cid in case_ids]
    for row in matrix:
        # Rows whose status is not the same in every run are what a reader looks for.
        row["differs"] = len(runs) > 1 and len(set(row["cells"])) > 1
    return _env.get_template("report.html.j2").render(
        runs=views, matrix=matrix, comparison=comparison, failing=sorted(FAILING), kinds=causes.KINDS,
        flaky=confirm.flaky_lines(comparison) if comparison else [],
        likely=confirm.likely_lines(comparison) if comparison else [],
        new_splats=[compare.splat_line(s) for s in comparison.get("new_splats", [])] if comparison else [],
        failed_splats=[compare.splat_line(s) for s in (comparison.get("series_failed") or {}).get("splats", [])]
        if comparison else [],
        regression_kinds=confirm.regression_kinds(comparison) if comparison else [],
        statuses=[s for s in STATUSES if any(v["counts"].get(s) for v in views)],
        history=[{"key": h.key, "points": h.points, "svg": history_chart.svg(h)} for h in history or []],
        history_legend=history_chart.legend())


def write_html(path: pathlib.Path, runs: list[tuple[dict, pathlib.Path]],
               comparison: dict | None = None, history: list | None = None) -> None:
    cache.atomic_write(pathlib.Path(path), render_html(runs, comparison, history))


def render_matrix_html(stamp: str, rows: list[dict], changes: list[dict]) -> str:
    """The matrix page: rows of {name, arch, kernel, build, boot, data, report, verdict,
    minutes} (report: the cell's report.html relative to the page), then per arch what
    each newer kernel changed (matrix/kernels.py)."""
    cells = []
    for r in rows:
        data = r["data"]
        cells.append({**r, "counts": counts(data.get("cases", [])), "splats": len(data.get("splats", [])),
                      "unexplained": len(causes.unexplained(data)) if data.get("cases") else ""})
    statuses = [s for s in STATUSES if any(c["counts"].get(s) for c in cells)]
    return _env.get_template("matrix.html.j2").render(stamp=stamp, rows=cells, changes=changes,
                                                      statuses=statuses)


def write_run_reports(recorder: Recorder) -> None:
    """The end of every run (make test, the pytest plugin's merge): junit.xml, results.ktap,
    report.html and summary.txt beside results.json. `orchestrator report` makes them again from
    results.json, so a failure here costs the pages, never the results."""
    data = recorder.data
    try:
        junit.write(data, recorder.dir / "junit.xml")
        ktap_out.write(data, recorder.dir / "results.ktap")
    except (OSError, OrchestratorError):
        pass   # a full disk: results.json (written first) is what counts
    try:
        write_html(recorder.dir / "report.html", [(data, recorder.dir)],
                   comparison=(data.get("baseline") or {}).get("diff"))
        cache.atomic_write(recorder.dir / "summary.txt", summary_text([data]) + "\n")
    except Exception as exc:  # noqa: BLE001 - any bug in the page must not cost the run's results
        print(f"orchestrator: the report pages of {recorder.dir} were not written ({exc}); "
              f"`orchestrator report {recorder.dir}` makes them from results.json.")


# -- text for a reply, JUnit for CI ---------------------------------------------------

def summary_text(runs: list[dict]) -> str:
    """Per run one line of counts, then each failing case and each splat, one line each."""
    out = []
    for data, label in zip(runs, _labels(runs)):
        out.append(f"{label}: {counts_line(data)}")
        for c in data.get("cases", []):
            if c["status"] in FAILING:
                out.append(f"  {c['status']} {c['id']}: {_cut(c.get('reason') or '')}")
                cause = causes.of(c, data)
                if cause:
                    out.append(f"    known cause, {_cut(causes.line(cause))}")
        for s in data.get("splats", []):
            times = f" x{s['count']}" if s.get("count", 1) > 1 else ""
            out.append(f"  splat {s['kind']}{times} during {s.get('case') or 'boot/idle'}: "
                       f"{_cut(s.get('title', ''))}")
    return "\n".join(out) + "\n"


def merge_junit(runs: list[dict], path: pathlib.Path) -> None:
    """One JUnit document for several runs; suites are named `<arch>.<suite>` (with the
    run's label when an arch repeats)."""
    root = ET.Element("testsuites", name="orchestrator " + " ".join(d.get("run_id", "") for d in runs))
    for data, label in zip(runs, _labels(runs)):
        root.extend(junit.testsuites(data, label))
    cache.atomic_write(pathlib.Path(path), junit.to_string(root))
