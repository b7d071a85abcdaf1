"""Judging differences (results/confirm.py) on a real A/B of x86_64 6.12 (base, and a
series that breaks two cases), with tries made from those runs: a try is a run of the
differing cases only, as versus_base runs them."""
import math

import pytest
from msgspec.structs import replace

from orchestrator.model import (Attribution, Cause, CaseResult, HistoryLine, Location, RunRecord, Seen,
                                SideCounts, Splat, Spread, Stage, Stages)
from orchestrator.results import compare, confirm
from orchestrator.results.recorder import load_run, read_comparison

AB = "ab-x86_64-v2"
BROKEN = "dynevent/add_remove_kprobe.tc"
COOKIES = "kprobe_multi/cookies"
MAXACTIVE = "kprobe/kretprobe_maxactive.tc"
BUG = Splat(kind="bug", title="kernel BUG at kernel/trace/trace_kprobe.c:1021!", kernel_time=None,
            console_line=1, lines=[], case=MAXACTIVE, count=1,
            location=Location(file="kernel/trace/trace_kprobe.c", line=1021))


def _splat(kind: str, title: str, case: str | None) -> Splat:
    return Splat(kind=kind, title=title, kernel_time=None, console_line=1, lines=[], case=case, count=1)


def _load(data_dir, side) -> RunRecord:
    return load_run(data_dir / AB / side)


def _statuses_set(cases: list[CaseResult], statuses: dict[str, str]) -> list[CaseResult]:
    return [replace(c, status=statuses[c.id]) if c.id in statuses else c for c in cases]


def _try(run: RunRecord, overrides: dict[str, str] | None = None, splats: list[Splat] | None = None,
         ids=(BROKEN, COOKIES)) -> RunRecord:
    """A try of `run`: the cases `ids`, with some statuses changed."""
    cases = _statuses_set([c for c in run.cases if c.id in ids], overrides or {})
    return replace(run, cases=cases, splats=list(splats) if splats is not None else [])


def _with(run: RunRecord, statuses: dict[str, str], splats: list[Splat] | None = None) -> RunRecord:
    return replace(run, cases=_statuses_set(run.cases, statuses),
                   splats=list(splats) if splats is not None else run.splats)


def test_targets_are_the_differing_cases(data_dir):
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    diff = compare.compare(base, series)
    assert confirm.targets(diff) == [BROKEN, COOKIES]


def test_a_difference_every_try_repeats_stays_a_new_failure(data_dir):
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    diff = compare.compare(base, series)
    out = confirm.confirm(diff, [base, _try(base), _try(base)], [series, _try(series), _try(series)])
    assert [e.id for e in out.new_failures] == [BROKEN, COOKIES]
    assert out.new_failures[0].tries == SideCounts(base=3, series=3)
    assert out.flaky == [] and out.regressed is True and out.unsettled == []


def test_failing_on_every_series_run_is_a_new_failure_whatever_the_failing_status(data_dir):
    """Base PASS x3, series FAIL, FAIL, ERROR: a case that fails, then hangs on a retry,
    is the common shape of a real regression, not flaky."""
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    diff = compare.compare(base, series)
    s_runs = [series, _try(series), _try(series, {BROKEN: "ERROR"})]
    out = confirm.confirm(diff, [base, _try(base), _try(base)], s_runs)
    assert [e.id for e in out.new_failures] == [BROKEN, COOKIES]
    assert out.new_failures[0].series_statuses == ["FAIL", "FAIL", "ERROR"]
    assert out.flaky == [] and out.regressed is True
    assert "dynevent/add_remove_kprobe.tc: PASS -> FAIL (FAIL, FAIL, ERROR)" in compare.mail_summary(out, base, series)


def test_a_one_off_failure_is_unsettled_until_the_tries_cannot_make_it_significant(data_dir):
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    diff = compare.compare(base, series)
    passing = lambda n: [_try(series, {BROKEN: "PASS"}) for _ in range(n)]  # noqa: E731
    b_runs = lambda n: [base] + [_try(base) for _ in range(n)]  # noqa: E731
    out = confirm.confirm(diff, b_runs(2), [series, *passing(2)])
    assert [e.id for e in out.new_failures] == [COOKIES]
    (flaky,) = out.flaky
    assert (flaky.id, flaky.status, flaky.series, flaky.base) == (BROKEN, "FAIL", "1/3", "0/3")
    assert flaky.was == "new_failures"
    # 8 more tries a side could still make it significant: more tries are asked for.
    assert out.unsettled == [BROKEN]
    # 7 passing tries a side: even 3 failing tries of the 3 left would not (p = 0.105).
    out = confirm.confirm(diff, b_runs(7), [series, *passing(7)])
    assert out.unsettled == [] and [e.id for e in out.flaky] == [BROKEN]
    line = confirm.flaky_lines(out)[0]
    assert line.startswith(f"{BROKEN}: FAIL 1/8 on series, 0/8 on base (")
    assert line.endswith("; p = 1.00")
    text = compare.mail_summary(out, base, series)
    assert "flaky (mixed results the test cannot tell apart: not a difference):" in text
    assert f"{BROKEN}: PASS -> FAIL" not in text and f"{COOKIES}: PASS -> FAIL" in text


def test_an_intermittent_regression_is_a_likely_regression_with_its_test(data_dir):
    """Series FAIL, PASS, FAIL... against a clean base: 5 of 8 failing tries against 0
    of 8 is p = 0.013 by Fisher's exact test: a regression for the exit code and Tested-by."""
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    diff = compare.compare(base, series)
    pattern = ["FAIL", "PASS", "FAIL", "FAIL", "PASS", "FAIL", "PASS", "FAIL"]
    s_runs = [series] + [_try(series, {BROKEN: st}) for st in pattern]
    out = confirm.confirm(diff, [base] + [_try(base) for _ in pattern], s_runs)
    (likely,) = out.likely_regressions
    assert (likely.id, likely.was, likely.series, likely.base) == (BROKEN, "new_failures", "6/9", "0/9")
    assert likely.p == pytest.approx(0.0128, abs=1e-4)
    assert out.regressed is True and out.flaky == [] and out.unsettled == []
    text = compare.mail_summary(out, base, series)
    assert (f"{BROKEN}: fails 6/9 with the series, 0/9 on the base (p = 0.013)" in text)
    assert "likely regressions (mixed runs; Fisher's exact test" in text


def test_mixed_at_similar_rates_on_both_sides_is_flaky(data_dir):
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    diff = compare.compare(base, series)
    pattern = ["FAIL", "PASS", "PASS", "FAIL", "PASS", "PASS", "PASS", "FAIL", "PASS", "PASS"]
    b_runs = [base] + [_try(base, {BROKEN: st}) for st in reversed(pattern)]
    s_runs = [series] + [_try(series, {BROKEN: st}) for st in pattern]
    out = confirm.confirm(diff, b_runs, s_runs)
    assert [e.id for e in out.flaky] == [BROKEN] and out.likely_regressions == []
    assert out.unsettled == []   # 10 tries a side: the cap


def test_the_base_history_counts_on_the_base_side(data_dir):
    """5 of 6 failing tries against 0 of 6 is p = 0.008; with a base whose earlier runs
    failed as often (10 of 12), it is flaky."""
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    diff = compare.compare(base, series)
    s_runs = [series] + [_try(series, {BROKEN: "PASS" if k == 0 else "FAIL"}) for k in range(6)]
    b_runs = [base] + [_try(base) for _ in range(6)]
    (likely,) = confirm.confirm(diff, b_runs, s_runs).likely_regressions
    assert likely.id == BROKEN and likely.p == pytest.approx(7 / 924, abs=1e-4)
    history = [HistoryLine(run_id=f"old{k}", statuses={BROKEN: "FAIL" if k % 6 else "PASS"}) for k in range(12)]
    out = confirm.confirm(diff, b_runs, s_runs, base_history=history)
    assert out.likely_regressions == [] and out.flaky[0].base_history == "10/12"


def test_coverage_lost_is_a_regression(data_dir):
    """PASS -> UNSUPPORTED (a series that turns fprobe off) on every run, and a passing
    case the series removed."""
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    series = _with(series, {"dynevent/add_remove_fprobe.tc": "UNSUPPORTED"})
    series = replace(series, cases=[c for c in series.cases if c.id != "kprobe_multi/session"])
    diff = compare.compare(base, series)
    assert [(e.id, e.series) for e in diff.coverage_lost] == [
        ("dynevent/add_remove_fprobe.tc", "UNSUPPORTED"), ("kprobe_multi/session", None)]
    ids = ("dynevent/add_remove_fprobe.tc", "kprobe_multi/session")
    out = confirm.confirm(diff, [base, _try(base, ids=ids)], [series, _try(series, ids=ids)])
    assert [e.id for e in out.coverage_lost] == list(ids)
    assert out.regressed is True and "coverage lost" in confirm.regression_kinds(out)
    text = compare.mail_summary(out, base, series)
    assert "  coverage lost (the case ran on the base, not with the series):" in text
    assert "    kprobe_multi/session: PASS -> absent" in text


def test_a_failing_case_only_the_series_has_is_a_regression(data_dir):
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    series = replace(series, cases=series.cases + [CaseResult(
        id="kprobe/new_selftest.tc", suite="kprobe", status="FAIL", description="a new selftest",
        reason="failed at: test -d events/kprobes/x", seconds=1.0)])
    diff = compare.compare(base, _with(series, {BROKEN: "PASS", COOKIES: "PASS"}))
    assert [e.id for e in diff.new_cases_failing] == ["kprobe/new_selftest.tc"]
    assert diff.only_in_series == [] and diff.regressed is True
    out = confirm.confirm(diff, [base], [_with(series, {BROKEN: "PASS", COOKIES: "PASS"})])
    assert out.regressed is True
    assert "new cases failing (only in the series)" in compare.mail_summary(out, base, series)


def test_a_bug_on_some_boots_in_lines_the_series_changed_is_the_series(data_dir):
    """The BUG_ON series: kretprobe_maxactive.tc fails on every series run (FAIL when the
    new code returns -EINVAL, ERROR when it hits BUG_ON), the BUG on 2 of 3 runs."""
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    first = _with(series, {MAXACTIVE: "FAIL"}, splats=series.splats)
    diff = compare.compare(base, first)
    ids = (BROKEN, COOKIES, MAXACTIVE)
    s_runs = [first, _try(first, {MAXACTIVE: "ERROR"}, [BUG], ids), _try(first, {MAXACTIVE: "ERROR"}, [BUG], ids)]
    b_runs = [base, _try(base, ids=ids), _try(base, ids=ids)]
    from orchestrator.suites.splats import splat_key
    key = splat_key(BUG)
    attributed = {key: Attribution(patch=1, patches=1, subject="tracing: x", file="kernel/trace/trace_kprobe.c",
                                   line=1021, commit="abc")}
    out = confirm.confirm(diff, b_runs, s_runs, attributed=attributed)
    assert MAXACTIVE in [e.id for e in out.new_failures]
    (bug,) = out.new_splats
    assert bug.attributed.patch == 1 and bug.seen == Seen(series="2/3", base="0/3")
    assert out.regressed is True
    text = compare.mail_summary(out, base, first)
    assert ("kernel BUG at kernel/trace/trace_kprobe.c:1021! (during kprobe/kretprobe_maxactive.tc): in a line "
            "patch 1/1 changed: kernel/trace/trace_kprobe.c:1021; seen 2/3 with the series, 0/3 on the base") in text
    # Not attributed (no frames decoded): never seen on the base kernel, still the series'.
    out = confirm.confirm(diff, b_runs, s_runs)
    assert [s.title for s in out.new_splats] == [BUG.title] and out.flaky_splats == []
    assert out.new_splats[0].why.startswith("never seen on the base kernel")


def test_a_splat_the_base_also_shows_is_flaky_and_one_the_emulator_is_known_for_too(data_dir):
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    oops = _splat("oops", "Oops: int3: 0000 [#1] SMP", BROKEN)
    panic = _splat("panic", "Kernel panic - not syncing: Fatal exception in interrupt", BROKEN)
    series = replace(series, splats=series.splats + [oops, panic])
    diff = compare.compare(base, series)
    assert [s.title for s in diff.new_splats] == [oops.title, panic.title]
    b_runs, s_runs = [base, _try(base), _try(base)], [series, _try(series), _try(series)]
    # Never on the base and nothing known of it: both count against the series.
    out = confirm.confirm(diff, b_runs, s_runs)
    assert len(out.new_splats) == 2 and out.flaky_splats == []
    # The base's history shows it: flaky.
    history = [HistoryLine(run_id="old", statuses={BROKEN: "ERROR"}, splats=["oops: Oops: intN: N [#N] SMP"])]
    out = confirm.confirm(diff, b_runs, s_runs, base_history=history)
    assert [s.title for s in out.flaky_splats] == [oops.title]
    # The known-causes table names the int3 Oops: it and the panic it ends in are flaky.
    known = lambda title, arch, version: (Cause(kind="unsettled", why="TCG int3") if "int3" in title else None)  # noqa: E731
    out = confirm.confirm(diff, b_runs, s_runs, known_noise=known)
    assert out.new_splats == [] and out.regressed is True   # the two broken cases still are
    assert [s.known_cause.follows if s.known_cause else None for s in out.flaky_splats] == [None, oops.title]
    # ...unless the series shows it significantly more often (every run: confirmed).
    s_runs = [series] + [_try(series, splats=[oops] if k else []) for k in range(6)]
    b_runs = [base] + [_try(base) for _ in range(6)]
    out = confirm.confirm(diff, b_runs, s_runs, known_noise=known)
    assert [e.id for e in out.likely_regressions] == [f"splat {oops.title}"]


def test_a_splat_seen_in_a_try_only_is_judged_too(data_dir):
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    diff = compare.compare(base, series)
    assert diff.new_splats == []
    s_runs = [series, _try(series, splats=[replace(BUG, case=BROKEN)]), _try(series)]
    out = confirm.confirm(diff, [base, _try(base), _try(base)], s_runs)
    assert [(s.title, s.seen.series) for s in out.new_splats] == [(BUG.title, "1/3")]


def test_a_warn_once_is_named_by_the_case_it_was_seen_during_most_often(data_dir):
    """A WARN_ONCE lands on the first case to reach it in each boot; the first run gave it
    to COOKIES, every try to BROKEN: the report names BROKEN, and counts it over the runs
    that held BROKEN."""
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    diff = compare.compare(base, series)
    warn = _splat("warning", "WARNING: kernel/trace/trace_kprobe.c:498 at __register_trace_kprobe+0x52/0x120", None)
    s_runs = [_with(series, {}, [replace(warn, case=COOKIES)])] + [_try(series, splats=[replace(warn, case=BROKEN)])
                                                                   for _ in range(3)]
    out = confirm.confirm(diff, [base, _try(base), _try(base), _try(base)], s_runs)
    (new,) = out.new_splats
    assert new.case == BROKEN and new.seen.series == "4/4"
    # On a tie, the case of the first run it was seen in...
    s_runs = [_with(series, {}, [replace(warn, case=COOKIES)]), _try(series, splats=[replace(warn, case=BROKEN)])]
    out = confirm.confirm(diff, [base, _try(base)], s_runs)
    assert [s.case for s in out.new_splats] == [COOKIES]
    # ...unless only another of the tied cases is a confirmed new failure: that one (a try
    # boots each guest afresh, so each retried case that registers a kprobe gets the WARN).
    passing = "kprobe/kprobe_args.tc"
    s_runs = [_with(series, {}, [replace(warn, case=passing)]), _try(series, splats=[replace(warn, case=BROKEN)])]
    out = confirm.confirm(diff, [base, _try(base)], s_runs)
    assert BROKEN in {e.id for e in out.new_failures} and passing not in {e.id for e in out.new_failures}
    assert [s.case for s in out.new_splats] == [BROKEN]


def test_a_try_whose_kernel_did_not_boot_fails_every_case(data_dir):
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    diff = compare.compare(base, series)
    dead = replace(series, run_id="x", state="failed", cases=[], splats=[], stages=Stages(boot=Stage(state="failed")))
    out = confirm.confirm(diff, [base, _try(base), _try(base)], [series, dead, _try(series)])
    assert [e.id for e in out.new_failures] == [BROKEN, COOKIES]
    assert out.new_failures[0].series_statuses == ["FAIL", "ERROR", "FAIL"]


def test_no_retries_takes_the_first_results_as_they_are(data_dir):
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    diff = compare.compare(base, series)
    out = confirm.confirm(diff, [base], [series])
    assert [e.id for e in out.new_failures] == [BROKEN, COOKIES] and out.flaky == []


def test_fisher_and_the_number_of_tries_are_what_the_module_says():
    """The p-values against the hypergeometric tail written out, and MAX_TRIES' figures:
    power for a case failing half the time with the series, false alarms for a case
    failing as often on both sides."""
    assert confirm.fisher_greater(5, 8, 0, 8) == pytest.approx(math.comb(8, 5) / math.comb(16, 5))
    assert confirm.fisher_greater(4, 10, 0, 10) == pytest.approx(0.0433, abs=1e-4)
    assert confirm.fisher_greater(0, 5, 3, 5) == 1.0
    n = confirm.MAX_TRIES

    def binom(k, rate):
        return math.comb(n, k) * rate ** k * (1 - rate) ** (n - k)

    power = sum(binom(k, 0.5) for k in range(n + 1) if confirm.fisher_greater(k, n, 0, n) < confirm.ALPHA)
    false_alarm = sum(binom(a, 0.5) * binom(b, 0.5) for a in range(n + 1) for b in range(n + 1)
                      if confirm.fisher_greater(a, n, b, n) < confirm.ALPHA)
    assert round(power, 2) == 0.83 and round(false_alarm, 3) == 0.021


def test_history_marks_a_case_seen_with_other_results_on_this_kernel(data_dir, tmp_path):
    from orchestrator.results import history
    base = _load(data_dir, "base")
    path = history.path_for(tmp_path, base.kernel.tree_id, "inputs")
    for _ in range(8):
        assert history.record(path, base) == {}       # the same statuses each time: no record
    odd = _with(base, {BROKEN: "ERROR"})
    got = history.record(path, odd)
    assert got == {BROKEN: Spread(runs=9, counts={"PASS": 8, "ERROR": 1})}
    assert history.mark(BROKEN, "ERROR", got[BROKEN]) == f"{BROKEN}: ERROR in 1 of the last 9 runs of this kernel"
    # The next clean run still shows it, from the PASS side.
    again = history.record(path, base)
    assert history.mark(BROKEN, "PASS", again[BROKEN]) == f"{BROKEN}: ERROR in 1 of the last 10 runs of this kernel"
    # Another kernel (or other inputs) has a history of its own.
    assert history.record(history.path_for(tmp_path, "git:other", "inputs"), odd) == {}
    # Each line keeps the run's splats, for judging a splat against the base's past.
    from orchestrator.suites.splats import splat_key
    assert history.earlier(path)[-1].splats == sorted({splat_key(s) for s in base.splats})
    assert len(base.splats) == 2


def test_a_real_ab_with_a_flaky_oops_is_no_difference(data_dir):
    """A comment-only series on x86_64 6.12 (one of ten A/B runs here): the int3 Oops of
    fprobe_under_function_graph.tc struck one of the three series runs and none of the
    base's; the known-causes table names it, so it is flaky, and the comparison says no
    difference."""
    from orchestrator.results import causes
    d = data_dir / "ab-x86_64-flaky"
    base, series = (load_run(d / s) for s in ("base", "series"))
    # Its tries, as compare.json recorded them: the case passed on each, with no splat.
    recorded = read_comparison(d).diff.flaky[0]
    assert recorded.series_statuses == ["ERROR", "PASS", "PASS"]
    case = "tcscripts/fprobe_under_function_graph.tc"
    b_runs = [base] + [_try(base, ids=(case,)) for _ in range(2)]
    s_runs = [series] + [_try(series, {case: "PASS"}, ids=(case,)) for _ in range(2)]
    diff = confirm.confirm(compare.compare(base, series), b_runs, s_runs, known_noise=causes.known_splat)
    assert diff.regressed is False and diff.new_failures == [] and diff.new_splats == []
    (flaky,) = diff.flaky
    assert (flaky.id, flaky.series, flaky.base) == ("tcscripts/fprobe_under_function_graph.tc", "1/3", "0/3")
    assert {s.title for s in diff.flaky_splats} == {"Oops: int3: 0000 [#1] SMP",
                                                   "Kernel panic - not syncing: Fatal exception in interrupt"}
    text = compare.mail_summary(diff, base, series)
    assert ("tcscripts/fprobe_under_function_graph.tc: ERROR 1/3 on series, 0/3 on base (Oops: int3: 0000 [#1] SMP"
            in text)
    assert text.rstrip().endswith("no difference between base and series")


def test_only_what_could_count_against_the_series_gets_more_tries(data_dir):
    """A base that failed once (TCG's int3 Oops in its first run) and a series that passes:
    a possible fix, mixed, is flaky at once; the same mix the other way round is tried on."""
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    base = _with(base, {BROKEN: "FAIL"})
    series = _with(series, {BROKEN: "PASS", COOKIES: "PASS"})
    diff = compare.compare(base, series)
    assert [e.id for e in diff.fixed] == [BROKEN]
    out = confirm.confirm(diff, [base, _try(base, {BROKEN: "PASS"}), _try(base, {BROKEN: "PASS"})],
                          [series, _try(series), _try(series)])
    assert [e.id for e in out.flaky] == [BROKEN] and out.unsettled == []
    diff = compare.compare(series, base)
    out = confirm.confirm(diff, [series, _try(series), _try(series)],
                          [base, _try(base, {BROKEN: "PASS"}), _try(base, {BROKEN: "PASS"})])
    assert out.unsettled == [BROKEN]


def test_a_splat_on_every_series_run_that_the_base_showed_long_ago_is_tested_not_confirmed(data_dir):
    base, series = _load(data_dir, "base"), _load(data_dir, "series")
    oops = _splat("oops", "Oops: int3: 0000 [#1] SMP", BROKEN)
    s_runs = [_with(series, {}, series.splats + [oops])] + [_try(series, splats=[oops]) for _ in range(4)]
    b_runs = [base] + [_try(base) for _ in range(4)]
    diff = compare.compare(base, s_runs[0])
    key = "oops: Oops: intN: N [#N] SMP"
    rare = [HistoryLine(run_id=f"h{k}", statuses={BROKEN: "PASS"}, splats=[key] if k == 0 else [])
            for k in range(20)]
    out = confirm.confirm(diff, b_runs, s_runs, base_history=rare)
    # 4 of 4 tries against 1 of 24 earlier and tried base runs: significant, not flaky.
    assert [e.id for e in out.likely_regressions] == [f"splat {oops.title}"]
    often = [replace(h, splats=[key] if k % 4 else []) for k, h in enumerate(rare)]   # 15 of 20
    out = confirm.confirm(diff, b_runs, s_runs, base_history=often)
    assert [s.title for s in out.flaky_splats] == [oops.title] and out.new_splats == []
