"""Confirming differences (results/confirm.py) on a real A/B of x86_64 6.12 (base, and a
series that breaks two cases), with tries made from those runs: a try is a run of the
differing cases only, as versus_base runs them."""
import copy
import json

from orchestrator.results import compare, confirm

AB = "ab-x86_64-v2"
BROKEN = "dynevent/add_remove_kprobe.tc"
COOKIES = "kprobe_multi/cookies"


def _load(data_dir, side):
    return json.loads((data_dir / AB / side / "results.json").read_text())


def _try(run: dict, overrides: dict[str, str] | None = None, splats: list[dict] | None = None) -> dict:
    """A try of `run`: its cases that confirm.targets() names, with some statuses changed."""
    out = copy.deepcopy(run)
    out["cases"] = [c for c in out["cases"] if c["id"] in (BROKEN, COOKIES)]
    for c in out["cases"]:
        if c["id"] in (overrides or {}):
            c["status"] = overrides[c["id"]]
    out["splats"] = splats if splats is not None else []
    return out


def test_targets_are_the_differing_cases(data_dir):
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    diff = compare.compare(base, series)
    assert confirm.targets(diff) == [BROKEN, COOKIES]


def test_a_difference_every_try_repeats_stays_a_new_failure(data_dir):
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    diff = compare.compare(base, series)
    out = confirm.confirm(diff, [base, _try(base), _try(base)], [series, _try(series), _try(series)])
    assert [e["id"] for e in out["new_failures"]] == [BROKEN, COOKIES]
    assert out["new_failures"][0]["tries"] == {"base": 3, "series": 3}
    assert out["flaky"] == [] and out["regressed"] is True


def test_a_failure_that_does_not_repeat_is_flaky_and_no_regression(data_dir):
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    diff = compare.compare(base, series)
    # The cookies failure is deterministic; the broken case passes on the series' tries.
    s_tries = [_try(series, {BROKEN: "PASS"}), _try(series, {BROKEN: "PASS"})]
    out = confirm.confirm(diff, [base, _try(base), _try(base)], [series, *s_tries])
    assert [e["id"] for e in out["new_failures"]] == [COOKIES]
    (flaky,) = out["flaky"]
    assert (flaky["id"], flaky["status"], flaky["series"], flaky["base"]) == (BROKEN, "FAIL", "1/3", "0/3")
    assert flaky["was"] == "new_failures"
    line = confirm.flaky_lines(out)[0]
    assert line.startswith(f"{BROKEN}: FAIL 1/3 on series, 0/3 on base (")
    text = compare.mail_summary(out, base, series)
    assert "flaky (mixed results on a side: not a difference):" in text
    assert f"{BROKEN}: PASS -> FAIL" not in text and f"{COOKIES}: PASS -> FAIL" in text


def test_a_flaky_base_is_flaky_too_and_only_flaky_cases_make_no_regression(data_dir):
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    diff = compare.compare(base, series)
    b_tries = [_try(base, {BROKEN: "FAIL", COOKIES: "FAIL"}), _try(base)]
    out = confirm.confirm(diff, [base, *b_tries], [series, _try(series), _try(series)])
    assert out["new_failures"] == [] and out["regressed"] is False
    assert sorted(e["id"] for e in out["flaky"]) == [BROKEN, COOKIES]
    assert {e["base"] for e in out["flaky"]} == {"1/3"}


def test_a_one_sided_splat_that_does_not_repeat_is_a_flaky_splat(data_dir):
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    oops = {"kind": "oops", "title": "Oops: int3: 0000 [#1] SMP", "case": BROKEN, "lines": [], "count": 1}
    series = copy.deepcopy(series)
    series["splats"] = series["splats"] + [oops]
    diff = compare.compare(base, series)
    assert [s["title"] for s in diff["new_splats"]] == [oops["title"]]
    out = confirm.confirm(diff, [base, _try(base), _try(base)], [series, _try(series), _try(series)])
    assert out["new_splats"] == []
    (flaky,) = out["flaky_splats"]
    assert (flaky["series"], flaky["base"]) == ("1/3", "0/3")
    # The same splat in every series try and no base try is confirmed.
    again = [_try(series, splats=[oops]), _try(series, splats=[oops])]
    out = confirm.confirm(diff, [base, _try(base), _try(base)], [series, *again])
    assert [s["title"] for s in out["new_splats"]] == [oops["title"]] and out["flaky_splats"] == []


def test_no_retries_takes_the_first_results_as_they_are(data_dir):
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    diff = compare.compare(base, series)
    out = confirm.confirm(diff, [base], [series])
    assert [e["id"] for e in out["new_failures"]] == [BROKEN, COOKIES] and out["flaky"] == []


def test_history_marks_a_case_seen_with_other_results_on_this_kernel(data_dir, tmp_path):
    from orchestrator.results import history
    base = _load(data_dir, "base")
    path = history.path_for(tmp_path, base["kernel"]["tree_id"], "inputs")
    for _ in range(8):
        assert history.record(path, base) == {}       # the same statuses each time: no record
    odd = copy.deepcopy(base)
    next(c for c in odd["cases"] if c["id"] == BROKEN)["status"] = "ERROR"
    got = history.record(path, odd)
    assert got == {BROKEN: {"runs": 9, "counts": {"PASS": 8, "ERROR": 1}}}
    assert history.mark(BROKEN, "ERROR", got[BROKEN]) == f"{BROKEN}: ERROR in 1 of the last 9 runs of this kernel"
    # The next clean run still shows it, from the PASS side.
    again = history.record(path, base)
    assert history.mark(BROKEN, "PASS", again[BROKEN]) == f"{BROKEN}: ERROR in 1 of the last 10 runs of this kernel"
    # Another kernel (or other inputs) has a history of its own.
    assert history.record(history.path_for(tmp_path, "git:other", "inputs"), odd) == {}


def test_a_real_ab_with_a_flaky_oops_is_no_difference(data_dir):
    """A comment-only series on x86_64 6.12 (one of ten A/B runs here): the int3 Oops of
    fprobe_under_function_graph.tc struck one of the three series runs and none of the
    base's; it is flaky, and the comparison says no difference."""
    d = data_dir / "ab-x86_64-flaky"
    cmp = json.loads((d / "compare.json").read_text())
    base, series = (json.loads((d / s / "results.json").read_text()) for s in ("base", "series"))
    diff = cmp["diff"]
    assert diff["regressed"] is False and diff["new_failures"] == [] and diff["new_splats"] == []
    (flaky,) = diff["flaky"]
    assert (flaky["id"], flaky["series"], flaky["base"]) == ("tcscripts/fprobe_under_function_graph.tc", "1/3", "0/3")
    assert {s["title"] for s in diff["flaky_splats"]} == {"Oops: int3: 0000 [#1] SMP",
                                                         "Kernel panic - not syncing: Fatal exception in interrupt"}
    text = compare.mail_summary(diff, base, series, cmp["bisect"], cmp["each_patch"])
    assert ("tcscripts/fprobe_under_function_graph.tc: ERROR 1/3 on series, 0/3 on base (Oops: int3: 0000 [#1] SMP"
            in text)
    assert text.rstrip().endswith("no difference between base and series")
