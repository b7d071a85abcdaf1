"""CASES= (--case) picks cases by glob before anything is built; REPEAT= (--repeat) tallies
each case's failure rate over runs. On the real 7.2 tree's case list and real runs."""
from __future__ import annotations

import pathlib

import msgspec
import pytest

from orchestrator.cli.main import main
from orchestrator.errors import OrchestratorError
from orchestrator.repeat import tally
from orchestrator.results.recorder import load_run
from orchestrator.suites.runner import CaseSpec, select_cases

RUNS = pathlib.Path(__file__).parent / "data" / "runs"


def _cases() -> list[CaseSpec]:
    """The case list of a real run (x86_64, Debian 7.2.12, the default suites)."""
    return [CaseSpec(c.id, c.suite, f"/kto/{c.id}") for c in load_run(RUNS / "x86_64-7.2").cases
            if not c.id.endswith(")")]


def test_globs_pick_cases_by_id_or_file_name_in_the_suites_order():
    cases = _cases()
    assert [c.id for c in select_cases(cases, ("kprobe/kprobe_args_user.tc",), ["kprobe"])] == \
        ["kprobe/kprobe_args_user.tc"]
    by_name = select_cases(cases, ("kprobe_args_*.tc",), ["kprobe"])
    assert by_name and all(c.id.startswith("kprobe/kprobe_args_") for c in by_name)
    both = select_cases(cases, ("dynevent/*", "kprobe_args_user.tc"), ["dynevent", "kprobe"])
    assert [c.id for c in both] == [c.id for c in cases if c.id.startswith("dynevent/")
                                    or c.id == "kprobe/kprobe_args_user.tc"]


def test_a_glob_that_matches_nothing_is_one_sentence():
    with pytest.raises(OrchestratorError, match=r"--case kprobe/no_such\.tc matches no case of the suites "
                                                r"kprobe \(\d+ cases\); give a glob of case ids such as"):
        select_cases(_cases(), ("kprobe/*", "kprobe/no_such.tc"), ["kprobe"])


def test_the_tally_puts_the_cases_that_failed_first_with_their_rate():
    one = load_run(RUNS / "x86_64-base")            # 55 PASS, FAIL, ERROR (an Oops), UNSUPPORTED
    clean = msgspec.structs.replace(one, cases=[msgspec.structs.replace(c, status="PASS") if c.status in
                                                ("FAIL", "ERROR") else c for c in one.cases], splats=[])
    failing = [c for c in one.cases if c.status in ("FAIL", "ERROR")]
    lines = tally([one, clean, clean, one])
    assert len(lines) == len(one.cases)
    assert {l.split(":")[0] for l in lines[:2]} == {c.id for c in failing}
    for case in failing:   # statuses in the order first seen: the failing run came first
        line = next(l for l in lines if l.startswith(case.id + ":"))
        assert f"{case.id}: failed 2 of 4 runs ({case.status} 2, PASS 2)" in line
    assert any("; splats: " in l for l in lines[:2])
    passing = next(c.id for c in one.cases if c.status == "PASS")
    assert f"{passing}: failed 0 of 4 runs (PASS 4)" in lines


@pytest.mark.parametrize("argv, message", [
    (["--until-fail"], "--until-fail stops a --repeat"),
    (["--repeat", "3", "--series", "x.mbx"], "--repeat runs cases of one arch on one kernel"),
    (["--repeat", "3", "--arch", "x86_64,arm64"], "--repeat runs cases of one arch on one kernel"),
])
def test_repeat_refuses_what_it_cannot_do(tmp_path, capsys, argv, message):
    assert main(["test", "--results-dir", str(tmp_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_repeat_takes_a_number_of_runs(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["test", "--results-dir", str(tmp_path), "--repeat", "0"])
    assert exited.value.code == 2 and "'0' is not a number of runs from 1 to 1000" in capsys.readouterr().err
