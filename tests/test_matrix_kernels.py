"""The kernel axis of the matrix (matrix/kernels.py) on real runs: two runs of one arch,
the second told as counts of status changes per suite."""
import json

from orchestrator.matrix import kernels

AB = "ab-x86_64-v2"


def _load(data_dir, side):
    return json.loads((data_dir / AB / side / "results.json").read_text())


def test_changes_per_arch_are_folded_per_suite(data_dir):
    older, newer = _load(data_dir, "base"), _load(data_dir, "series")
    found = kernels.changes([("x86_64", "6.12", older), ("x86_64", "6.12+v2", newer),
                             ("arm64", "6.12", {"cases": []})])      # a failed cell: passed over
    assert [(c["arch"], c["older"], c["newer"]) for c in found] == [("x86_64", "6.12", "6.12+v2")]
    assert found[0]["changes"] == ["dynevent 1 PASS -> FAIL", "kprobe_multi 1 PASS -> FAIL"]
    assert kernels.render(found) == ("x86_64: 6.12 -> 6.12+v2: dynevent 1 PASS -> FAIL; "
                                     "kprobe_multi 1 PASS -> FAIL")


def test_the_same_results_are_no_difference(data_dir):
    older = _load(data_dir, "base")
    assert kernels.render(kernels.changes([("x86_64", "a", older), ("x86_64", "b", older)])) == \
        "x86_64: a -> b: no difference"
