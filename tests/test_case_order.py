"""Several guests take the cases longest first, by each case's time in earlier runs on
the same arch and accelerator; a case with no time yet goes first."""
import json

from orchestrator.model import CaseResult
from orchestrator.suites import order


def _case(case_id: str, seconds: float, suite: str = "kprobe") -> CaseResult:
    return CaseResult(case_id, suite, case_id, "PASS", seconds)


def test_the_longest_go_first_and_the_unknown_before_them():
    files = ["a.tc", "b.tc", "c.tc", "d.tc", "e.tc"]
    seconds = {"a.tc": 2.0, "b.tc": 300.0, "c.tc": 2.0, "e.tc": 40.0}
    assert [files[i] for i in order.longest_first(files, seconds)] == ["d.tc", "b.tc", "e.tc", "a.tc", "c.tc"]
    assert order.longest_first(files, {}) == [0, 1, 2, 3, 4]   # a first run: file order


def test_times_are_kept_per_arch_and_accelerator_and_updated(tmp_path):
    tcg = order.path_for(tmp_path, "riscv64", "tcg")
    assert tcg != order.path_for(tmp_path, "riscv64", "kvm") != order.path_for(tmp_path, "x86_64", "tcg")
    order.remember(tcg, [_case("kprobe/multiple_kprobes.tc", 300.0), _case("kprobe/profile.tc", 3.0)])
    # A later run of some cases: theirs replace the old times, the others stay.
    order.remember(tcg, [_case("kprobe/profile.tc", 4.5),
                         # one file run again in an instance: its two results add up
                         _case("ftrace/func_set_ftrace_file.tc", 1.5, "ftrace"),
                         _case("ftrace/func_set_ftrace_file.tc (instance)", 0.5, "ftrace"),
                         _case("kprobe/not_run.tc", 0.0)])   # never ran: nothing learned
    assert order.recorded(tcg) == {"kprobe/multiple_kprobes.tc": 300.0, "kprobe/profile.tc": 4.5,
                                   "ftrace/func_set_ftrace_file.tc": 2.0}


def test_an_unreadable_record_is_no_times(tmp_path):
    path = tmp_path / "x86_64-tcg.json"
    for text in ("{not json", json.dumps(["a"]), json.dumps({"a.tc": "slow", "b.tc": -1, "c.tc": 2})):
        path.write_text(text)
        assert order.recorded(path) == ({"c.tc": 2.0} if "c.tc" in text else {})
