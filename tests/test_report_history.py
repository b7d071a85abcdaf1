"""`report --history DIR` (results/history_chart.py): the nightly's runs per arch x kernel
over time, as an inline SVG chart in report.html with each run's new failures as points
linking to that run. Built from two real runs (tests/data/runs), replayed over five days
with a regression on one, as a nightly's artifacts would hold them."""
from __future__ import annotations

import copy
import json
import pathlib
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from orchestrator.results import history_chart

DATA = pathlib.Path(__file__).parent / "data" / "runs"
REPO = pathlib.Path(__file__).resolve().parent.parent
HOSTILE = "dynevent/<script>alert(1)</script>.tc"


@pytest.fixture
def nightly(tmp_path) -> pathlib.Path:
    top = tmp_path / "artifacts"
    for day in range(1, 6):
        for name in ("x86_64-7.2", "arm64"):
            data = json.loads((DATA / name / "results.json").read_text())
            d = copy.deepcopy(data)
            d["started_at"] = f"2026-11-{20 + day:02d}T02:00:00+00:00"
            d["run_id"] = f"202611{20 + day:02d}-020000-{d['arch']}-1"
            if day == 3 and d["arch"] == "x86_64":   # one night breaks a case and adds a failing one
                next(c for c in d["cases"] if c["status"] == "PASS")["status"] = "FAIL"
                d["cases"].append({**d["cases"][0], "id": HOSTILE, "status": "ERROR"})
            if day == 4 and d["arch"] == "x86_64":   # compared with the night before: one case flaky
                d["baseline"] = {"path": "../nightly-3", "run_id": "20261123-020000-x86_64-1", "diff": {"flaky": [
                    {"id": "kprobe/x.tc", "status": "ERROR", "was": "new_failures", "series": "1/3", "base": "0/1"}]}}
            run = top / f"nightly-{day}" / d["run_id"]
            run.mkdir(parents=True)
            (run / "results.json").write_text(json.dumps(d))
    return top


def test_runs_grouped_per_arch_and_kernel_with_new_failures(nightly, tmp_path):
    charts = history_chart.collect(nightly, tmp_path)
    by_key = {h.key: h for h in charts}
    assert len(by_key) == 2 and all(len(h.points) == 5 for h in charts)
    x86 = next(h for h in charts if h.arch == "x86_64")
    assert [p.when[:10] for p in x86.points] == [f"2026-11-{d}" for d in range(21, 26)]
    new = [p.new_failures for p in x86.points]
    first = next(c for c in json.loads((DATA / "x86_64-7.2" / "results.json").read_text())["cases"]
                 if c["status"] == "PASS")["id"]
    assert new[2] == sorted([first, HOSTILE]) and new[0] == new[1] == []
    assert new[3] == new[4] == []   # fixed the night after: nothing new
    assert x86.points[2].values["failing"] == x86.points[1].values["failing"] + 2
    assert [p.values["flaky"] for p in x86.points] == [0, 0, 0, 1, 0]
    assert x86.points[2].report == "artifacts/nightly-3/20261123-020000-x86_64-1/report.html"


def test_the_chart_is_svg_that_escapes_what_the_guest_named(nightly, tmp_path):
    x86 = next(h for h in history_chart.collect(nightly, tmp_path) if h.arch == "x86_64")
    svg = str(history_chart.svg(x86))
    root = ET.fromstring(svg)   # well-formed XML: a browser's SVG parser takes it
    ns = "{http://www.w3.org/2000/svg}"
    assert len(root.findall(f"{ns}polyline")) == len(history_chart.LINES)
    links = root.findall(f"{ns}a")
    assert len(links) == 1 and links[0].get("href").endswith("nightly-3/20261123-020000-x86_64-1/report.html")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert HOSTILE in links[0].find(f"{ns}circle/{ns}title").text


def test_report_history_writes_the_page(nightly, tmp_path):
    out = tmp_path / "page"
    p = subprocess.run([sys.executable, "-m", "orchestrator", "report", "--history", str(nightly), "--out", str(out)],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    html = (out / "report.html").read_text()
    assert '<section id="history">' in html and html.count('<svg xmlns="http://www.w3.org/2000/svg" class="history"') == 2
    assert "<script>alert" not in html
    # With no run named, the page's runs are the newest of each arch x kernel.
    assert "20261125-020000-x86_64-1" in html and "20261125-020000-arm64-1" in html
    if shutil.which("chromium"):
        # A real browser takes the SVG as SVG: its DOM has the circles and the links.
        dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                              (out / "report.html").as_uri()], capture_output=True, text=True, timeout=120).stdout
        assert dom.count("<circle") == 1 and dom.count("<polyline") == 2 * len(history_chart.LINES)


def test_history_bad_input_is_one_sentence(tmp_path):
    def report(*args):
        return subprocess.run([sys.executable, "-m", "orchestrator", "report", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
    p = report("--history", str(tmp_path / "nope"), "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "is not a directory" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "empty").mkdir()
    p = report("--history", str(tmp_path / "empty"), "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "holds no run" in p.stderr
    p = report()
    assert p.returncode == 2 and "run directories" in p.stderr
