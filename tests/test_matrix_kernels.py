"""The kernel axis of the matrix (matrix/kernels.py) on real runs: two runs of one arch,
the second told as counts of status changes per suite."""
import msgspec

from orchestrator.matrix import kernels
from orchestrator.results.recorder import load_run

AB = "ab-x86_64-v2"


def _load(data_dir, side):
    return load_run(data_dir / AB / side)


def test_changes_per_arch_are_folded_per_suite(data_dir):
    older, newer = _load(data_dir, "base"), _load(data_dir, "series")
    found = kernels.changes([("x86_64", "6.12", older), ("x86_64", "6.12+v2", newer),
                             ("arm64", "6.12", msgspec.structs.replace(older, cases=[]))])   # a failed cell: passed over
    assert [(c["arch"], c["older"], c["newer"]) for c in found] == [("x86_64", "6.12", "6.12+v2")]
    assert found[0]["changes"] == ["dynevent 1 PASS -> FAIL", "kprobe_multi 1 PASS -> FAIL"]
    assert kernels.render(found) == ("x86_64: 6.12 -> 6.12+v2: dynevent 1 PASS -> FAIL; "
                                     "kprobe_multi 1 PASS -> FAIL")


def test_the_same_results_are_no_difference(data_dir):
    older = _load(data_dir, "base")
    assert kernels.render(kernels.changes([("x86_64", "a", older), ("x86_64", "b", older)])) == \
        "x86_64: a -> b: no difference"


def test_the_matrix_page_links_each_cell_and_tells_the_kernel_axis(data_dir):
    from orchestrator.results import report
    import json
    from orchestrator.model import RunRecord, convert
    older, newer = _load(data_dir, "base"), _load(data_dir, "series")
    axis = kernels.changes([("x86_64", "6.12", older), ("x86_64", "6.12+v2", newer)])
    arm64 = json.loads((data_dir / "runs" / "arm64" / "results.json").read_text())
    rows = [{"name": "x86_64-a", "arch": "x86_64", "kernel": "6.12", "build": "reused", "boot": "1s",
             "minutes": "3.0", "verdict": "ok", "run": older, "report": "run-a/report.html"},
            {"name": "arm64-a", "arch": "arm64", "kernel": "6.12", "build": "5m", "boot": "2s",
             "minutes": "4.0", "verdict": "<b>guest said</b>", "run": convert(arm64, RunRecord), "report": None},
            {"name": "s390x-a", "arch": "s390x", "kernel": "6.12", "build": "FAILED", "boot": "-",
             "minutes": "-", "verdict": "build failed", "run": None, "report": None}]
    page = report.render_matrix_html("20261202-1", rows, axis)
    assert '<a href="run-a/report.html">x86_64-a</a>' in page and "<td>arm64-a</td>" in page
    assert "&lt;b&gt;guest said&lt;/b&gt;" in page and "<b>guest said</b>" not in page
    assert "<li>dynevent 1 PASS -&gt; FAIL</li>" in page
    # arm64's 6.12 run is explained in full; the x86_64 base run has nothing unexplained either.
    assert page.count('class="n bad"') == 0
    early_72 = json.loads((data_dir / "runs" / "x86_64-7.2" / "results.json").read_text())
    page = report.render_matrix_html("x", rows + [dict(rows[0], name="x86_64-7.2", run=convert(early_72, RunRecord))], axis)
    assert page.count('class="n bad"') == 1 and '<td class="n bad">3</td>' in page
