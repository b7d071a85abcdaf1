"""`orchestrator report`: pages made again from results.json, runs merged, and the
nightly's verdict (--fail-on-regression), on real runs."""
from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

REPO = pathlib.Path(__file__).resolve().parent.parent
RUNS = REPO / "tests" / "data" / "runs"


def report(*args: str) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "orchestrator", "report", *args], cwd=REPO,
                       capture_output=True, text=True, timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def _copy(name: str, dest: pathlib.Path) -> pathlib.Path:
    shutil.copytree(RUNS / name, dest / name)
    return dest / name


def test_two_arches_made_apart_merge_into_one_report(tmp_path):
    x86, arm = _copy("x86_64-base", tmp_path), _copy("arm64", tmp_path)
    p = report(str(x86), str(arm), "--out", str(tmp_path / "merged"), "--fail-on-regression")
    assert p.returncode == 0, p.stderr          # both complete, no baseline: nothing regressed
    merged = tmp_path / "merged"
    html = (merged / "report.html").read_text()
    assert "x86_64" in html and "arm64" in html
    suites = ET.parse(merged / "junit.xml").getroot().findall("./testsuite/testcase")
    n = sum(len(json.loads((d / "results.json").read_text())["cases"]) for d in (x86, arm))
    assert len(suites) == n
    summary = (merged / "summary.txt").read_text().splitlines()
    assert summary[0].startswith("x86_64: Linux 6.12.117") and summary[1] == "  58 cases: 55 pass, 1 fail, 1 error, " \
        "1 unsupported; 2 kernel splat(s)" and any(l.startswith("arm64: Linux") for l in summary)


def test_one_run_is_rendered_in_its_own_dir(tmp_path):
    run = _copy("arm64", tmp_path)
    assert report(str(run)).returncode == 0
    assert (run / "report.html").is_file() and (run / "summary.txt").is_file()


def _comparison(tmp_path: pathlib.Path) -> pathlib.Path:
    """results/ as a series run leaves it: the base and series runs, their -compare dir
    linking them, and results/latest pointing at it."""
    base, series = _copy("x86_64-base", tmp_path), _copy("x86_64-series", tmp_path)
    compare = tmp_path / "20261122-233256-x86_64-25167-compare"
    compare.mkdir()
    shutil.copy(RUNS / "x86_64-compare" / "compare.json", compare)
    (compare / "summary.txt").write_text("the comparison's text for the reply\n")
    (compare / "base").symlink_to(f"../{base.name}")
    (compare / "series").symlink_to(f"../{series.name}")
    (tmp_path / "latest").symlink_to(compare.name)
    return tmp_path / "latest"


def test_results_latest_after_a_series_run_is_its_comparison(tmp_path):
    latest = _comparison(tmp_path)
    p = report(str(latest), "--fail-on-regression")
    assert p.returncode == 1, p.stderr                    # compare.json says the series regressed
    assert "worse than its base 20261122-232417-x86_64-25167-base (new failures" in p.stderr
    html = (latest / "report.html").read_text()
    assert "What the series changed" in html and "x86_64-base" in html and "x86_64-series" in html
    # The reply's text is the comparison's own, not a page's summary.
    assert (latest / "summary.txt").read_text() == "the comparison's text for the reply\n"
    # Merged with other runs, a comparison is named and refused: which of its runs is meant?
    p = report(str(latest), str(_copy("arm64", tmp_path)), "--out", str(tmp_path / "m"))
    assert p.returncode == 2 and "is a series' comparison (base and series)" in p.stderr


def test_an_incomplete_or_regressed_run_fails_the_nightly(tmp_path):
    broken = _copy("x86_64-base", tmp_path)
    data = json.loads((broken / "results.json").read_text())
    data["state"], data["verdict"] = "failed", "The x86_64 kernel build failed after 18s"
    (broken / "results.json").write_text(json.dumps(data))
    worse = _copy("arm64", tmp_path)
    data = json.loads((worse / "results.json").read_text())
    data["baseline"] = {"path": "x", "run_id": "20261121-arm64", "diff": {
        "regressed": True, "new_failures": [{"id": "kprobe/profile.tc"}], "new_splats": [],
        "warnings_added": []}}
    (worse / "results.json").write_text(json.dumps(data))
    p = report(str(broken), str(worse), "--out", str(tmp_path / "m"), "--fail-on-regression")
    assert p.returncode == 1
    assert "regressed: 20261122-232417-x86_64-25167-base: failed: The x86_64 kernel build failed" in p.stderr
    assert "worse than 20261121-arm64 (new failures): kprobe/profile.tc" in p.stderr
    # Without the flag the pages are made and the exit is 0.
    assert report(str(broken), str(worse), "--out", str(tmp_path / "m2")).returncode == 0


def test_bad_input(tmp_path):
    p = report(str(tmp_path))
    assert p.returncode == 2 and f"{tmp_path}/results.json: No such file or directory; give a run directory" in p.stderr
    p = report(str(RUNS / "arm64"), str(RUNS / "x86_64-base"))
    assert p.returncode == 2 and "name its directory with --out" in p.stderr


def test_a_rerun_of_results_latest_after_a_series_run_is_of_its_series_run(tmp_path):
    latest = _comparison(tmp_path)
    p = subprocess.run([sys.executable, "-m", "orchestrator", "test", "--rerun", str(latest),
                        "--results-dir", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    # The series run's tree was a worktree of another machine's cache: gone here, said so.
    assert p.returncode == 2
    assert "the kernel tree of run 20261122-233256-x86_64-25167-series" in p.stderr and "is gone" in p.stderr
