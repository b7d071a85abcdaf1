"""What a bisect step shows (series/versus_base.py), on real runs of the x86_64 7.2 series of
tests/test_e2e_series.py on two guests: patch 2 adds a WARN_ONCE on kprobe-event
registration, patch 3 breaks dynevent/add_remove_kprobe.tc's own check.

At patch 2 each guest's first kprobe case hit the WARN, so both cases are FAIL though their
tests said PASS: that step shows the WARN, not the broken case. At the tip the broken case
fails by its own test (with the WARN landing on it too): it shows both."""
from __future__ import annotations

from orchestrator.model import CaseChange, Diff, RunRecord, SplatChange
from orchestrator.results.recorder import load_run
from orchestrator.series.versus_base import _shows, _shows_in, _targets
from orchestrator.suites.splats import splat_key

BROKEN = "dynevent/add_remove_kprobe.tc"
BTFARG = "dynevent/add_remove_btfarg.tc"


def _run(data_dir, name: str) -> RunRecord:
    return load_run(data_dir / "runs" / name)


def test_a_case_failed_only_by_a_splat_does_not_show_the_case(data_dir):
    step2 = _run(data_dir, "x86_64-7.2-bisect-2-warn")
    by_id = {c.id: c for c in step2.cases}
    assert by_id[BROKEN].status == "FAIL" and by_id[BROKEN].test_status == "PASS"
    assert not _shows_in(step2, ("case", BROKEN))
    warn = splat_key(step2.splats[0])
    assert _shows_in(step2, ("splat", warn))


def test_a_case_its_own_test_fails_shows_it_with_or_without_a_splat(data_dir):
    tip = _run(data_dir, "x86_64-7.2-series-try-broken")
    broken = next(c for c in tip.cases if c.id == BROKEN)
    assert broken.splats and not broken.test_status
    assert _shows_in(tip, ("case", BROKEN))
    assert not _shows_in(tip, ("case", "dynevent/no_such_case.tc"))


def test_every_try_must_agree_for_a_step_to_place_a_target(data_dir):
    step2, tip = _run(data_dir, "x86_64-7.2-bisect-2-warn"), _run(data_dir, "x86_64-7.2-series-try-broken")
    target = ("case", BROKEN)
    assert _shows([tip, tip], target) is True
    assert _shows([step2, step2], target) is False
    assert _shows([tip, step2], target) is None


def test_targets_are_own_failures_and_one_per_kind_of_splat(data_dir):
    tip = _run(data_dir, "x86_64-7.2-series-try-broken")
    cases = {c.id: c for c in tip.cases}
    diff = Diff(new_failures=[CaseChange(id=i, base="PASS", series=cases[i].status,
                                         test_status=cases[i].test_status) for i in (BROKEN, BTFARG)],
                new_splats=[SplatChange(kind=s.kind, title=s.title, case=s.case) for s in tip.splats])
    targets = _targets(diff)
    # btfarg failed only for the WARN: bisected as the WARN; the two WARN reports are one kind.
    assert set(targets) == {BROKEN, f"splat {tip.splats[0].title}"}


def test_the_comparison_is_written_before_the_bisect_and_again_after(data_dir, tmp_path):
    """_publish: the confirmed comparison lands in results/<run>-compare/ before a bisect
    starts (an interrupted bisect keeps it); the bisect's result is written into the same
    directory after."""
    import msgspec
    from orchestrator.model import Bisect
    from orchestrator.progress import Progress
    from orchestrator.results.recorder import read_comparison
    from orchestrator.run_inputs import TestOptions
    from orchestrator.series.versus_base import _publish
    base_dir, series_dir = data_dir / "runs" / "x86_64-base", data_dir / "runs" / "x86_64-series"
    base, series = load_run(base_dir), load_run(series_dir)
    old = read_comparison(data_dir / "runs" / "x86_64-compare")
    opts = TestOptions(arch="x86_64", results_root=tmp_path)
    first = _publish(opts, Progress(), None, (base, base_dir), (series, series_dir), [],
                     msgspec.structs.replace(old, bisect=None))
    assert read_comparison(first).bisect is None and (first / "summary.txt").is_file()
    assert (tmp_path / "latest").resolve() == first and (first / "base").resolve() == base_dir.resolve()
    bis = Bisect(patches=2, steps=1, first_bad={"kprobe_multi/cookies": old.series.patches[0]})
    again = _publish(opts, Progress(), first, (base, base_dir), (series, series_dir), [],
                     msgspec.structs.replace(old, bisect=bis))
    assert again == first and read_comparison(first).bisect == bis
    assert "first bad patch 1/2" in (first / "summary.txt").read_text()
