"""The nightly at a glance: from a directory of earlier runs (the nightly's artifacts, any
depth), per arch x kernel, the counts over time (PASS, failing, flaky, splats) as an inline
SVG chart, with each run's new failures (failing there, not in the run before it) as
points that link to that run's report.

Everything drawn from results.json is escaped: case ids and titles come from the guest.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib

import markupsafe

from ..model import RunRecord
from ..suites.status import FAILING
from .recorder import read_run

# metric -> (label, colour); what each line of a chart counts.
LINES = {
    "pass": ("PASS", "#2a7d2a"),
    "failing": ("FAIL/ERROR/UNRESOLVED", "#c62828"),
    "flaky": ("flaky (vs baseline)", "#ef8f00"),
    "splats": ("splats", "#6a1b9a"),
}
_W, _H, _PAD_L, _PAD_R, _PAD_T, _PAD_B = 640, 180, 44, 12, 12, 34


@dataclasses.dataclass
class Point:
    when: str                    # started_at, ISO
    run_id: str
    run_dir: pathlib.Path
    report: str                  # the run's report.html, relative to the page
    values: dict[str, int]
    new_failures: list[str]


@dataclasses.dataclass
class History:
    arch: str
    kernel: str
    points: list[Point]

    @property
    def key(self) -> str:
        return f"{self.arch} / {self.kernel}"


def _runs_under(top: pathlib.Path) -> list[tuple[RunRecord, pathlib.Path]]:
    found = []
    for root, dirs, files in os.walk(top, followlinks=False):
        dirs.sort()
        if "results.json" in files:
            run = read_run(pathlib.Path(root))
            if run is not None:
                found.append((run, pathlib.Path(root)))
    return found


def collect(top: pathlib.Path, page_dir: pathlib.Path) -> list[History]:
    """Every run under `top`, grouped by arch and kernel version, oldest first."""
    groups: dict[tuple[str, str], list[tuple[RunRecord, pathlib.Path]]] = {}
    for run, run_dir in _runs_under(top):
        groups.setdefault((run.arch, run.kernel.version or "unknown"), []).append((run, run_dir))
    out = []
    for (arch, kernel), runs in sorted(groups.items()):
        runs.sort(key=lambda r: r[0].started_at)
        points, before = [], set()
        for run, run_dir in runs:
            failing = {c.id for c in run.cases if c.status in FAILING}
            diff = run.baseline.diff if run.baseline else None
            values = {"pass": sum(1 for c in run.cases if c.status == "PASS"),
                      "failing": len(failing),
                      "flaky": len(diff.flaky) if diff else 0,
                      "splats": len(run.splats)}
            points.append(Point(run.started_at, run.run_id, run_dir,
                                os.path.relpath(run_dir / "report.html", page_dir), values,
                                sorted(failing - before) if points else []))
            before = failing
        out.append(History(arch, kernel, points))
    return out


def svg(history: History) -> markupsafe.Markup:
    """One chart: a line per metric over the runs in order, a red point per run with new
    failures (its title lists them; it links to that run's report)."""
    e = markupsafe.escape
    pts = history.points
    top = max([1] + [v for p in pts for v in p.values.values()])
    inner_w, inner_h = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B
    def x(i: int) -> float:
        return _PAD_L + (inner_w * i / (len(pts) - 1) if len(pts) > 1 else inner_w / 2)
    def y(v: int) -> float:
        return _PAD_T + inner_h * (1 - v / top)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="history" width="{_W}" height="{_H}" '
             f'viewBox="0 0 {_W} {_H}" role="img" aria-label="{e(history.key)}">',
             f'<line x1="{_PAD_L}" y1="{y(0):.1f}" x2="{_W - _PAD_R}" y2="{y(0):.1f}" stroke="#999"/>',
             f'<text x="{_PAD_L - 6}" y="{y(top) + 4:.1f}" text-anchor="end" font-size="11">{top}</text>',
             f'<text x="{_PAD_L - 6}" y="{y(0) + 4:.1f}" text-anchor="end" font-size="11">0</text>']
    for metric, (label, colour) in LINES.items():
        coords = " ".join(f"{x(i):.1f},{y(p.values[metric]):.1f}" for i, p in enumerate(pts))
        parts.append(f'<polyline class="line-{metric}" fill="none" stroke="{colour}" stroke-width="2" '
                     f'points="{coords}"><title>{e(label)}</title></polyline>')
    for i, p in enumerate(pts):
        day = p.when[:10]
        if i in (0, len(pts) - 1) or len(pts) <= 8:
            # The first and last labels inside the chart, not cut at its edges.
            anchor = "start" if i == 0 and len(pts) > 1 else "end" if i == len(pts) - 1 and len(pts) > 1 else "middle"
            parts.append(f'<text x="{x(i):.1f}" y="{_H - _PAD_B + 16}" text-anchor="{anchor}" '
                         f'font-size="10">{e(day)}</text>')
        if p.new_failures:
            title = f"{p.run_id} ({day}): new failures: " + ", ".join(p.new_failures)
            parts.append(f'<a href="{e(p.report)}" class="new-failures"><circle cx="{x(i):.1f}" '
                         f'cy="{y(p.values["failing"]):.1f}" r="5" fill="#c62828" stroke="#fff">'
                         f'<title>{e(title)}</title></circle></a>')
    parts.append("</svg>")
    return markupsafe.Markup("".join(parts))


def legend() -> markupsafe.Markup:
    e = markupsafe.escape
    return markupsafe.Markup(" ".join(
        f'<span style="color:{colour}">&#9632; {e(label)}</span>' for label, colour in LINES.values())
        + ' <span style="color:#c62828">&#9679; new failures (links to the run)</span>')
