"""One loader for a run read back from disk (results/recorder.load_run): a results.json
with a wrong type at any level, or that is no file at all, is one sentence naming the file
and the field, exit 2, from every command that reads one: report, --rerun, --baseline and
shell. Each starts from a real run's results.json (tests/data/runs/x86_64-7.2)."""
from __future__ import annotations

import copy
import json
import os
import pathlib
import shutil

import pytest

from orchestrator.cli.main import main

REAL = pathlib.Path(__file__).parent / "data" / "runs" / "x86_64-7.2" / "results.json"


def _broken(doc: dict, how: str):
    d = copy.deepcopy(doc)
    if how == "top-level list":
        return [d]
    if how == "cases a string":
        d["cases"] = "all passed"
    elif how == "splats of a case are numbers":
        d["cases"][0]["splats"] = [1, 2]
    elif how == "a stage's seconds a string":
        next(iter(d["stages"].values()))["seconds"] = "abc"
    elif how == "baseline.diff a string":
        d["baseline"] = {"path": "/x", "run_id": "r", "diff": "none"}
    elif how == "a status that is no status":
        d["cases"][3]["status"] = 5
    return d


WHERE = {"top-level list": "the top level", "cases a string": "cases", "splats of a case are numbers":
         "cases[0].splats[", "a stage's seconds a string": "stages.build.seconds: expected `float | null`, got `str`",
         "baseline.diff a string": "baseline.diff", "a status that is no status": "cases[3].status"}


def _commands(run: pathlib.Path, tmp: pathlib.Path) -> dict[str, list[str]]:
    results = tmp / "results"
    return {"report": ["report", "--out", str(tmp / "out"), str(run)],
            "rerun": ["test", "--rerun", str(run), "--results-dir", str(results)],
            "baseline": ["test", "--kernel", str(tmp / "no-tree"), "--baseline", str(run), "--results-dir", str(results)],
            "shell": ["shell", "--arch", "x86_64", "--results-dir", str(run.parent)]}


@pytest.mark.parametrize("how", list(WHERE))
@pytest.mark.parametrize("command", ["report", "rerun", "baseline", "shell"])
def test_a_wrong_type_anywhere_is_one_sentence_and_exit_2(tmp_path, capsys, how, command):
    run = tmp_path / "runs" / "20261206-010101-x86_64-1"
    run.mkdir(parents=True)
    doc = json.loads(REAL.read_text())
    doc["qemu_argv"] = ["qemu-system-x86_64", "-append", "console=ttyS0", "-serial", "stdio"]
    (run / "results.json").write_text(json.dumps(_broken(doc, how)))
    code = main(_commands(run, tmp_path)[command])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    if command == "shell":   # it looks through the runs for the newest that booted
        assert err.startswith("orchestrator: No run of x86_64 in ") and \
            f"; passed over 1 unreadable: {run}/results.json: {WHERE[how]}" in err, err
    else:
        assert err.startswith(f"orchestrator: {run}/results.json: {WHERE[how]}"), err
    assert len(err.splitlines()) == 1 and "internal error" not in err and "Traceback" not in err


@pytest.mark.parametrize("what", ["fifo", "directory", "huge", "not utf-8", "not json"])
def test_a_results_json_that_is_no_such_file_is_refused_without_reading_it(tmp_path, capsys, what, monkeypatch):
    from orchestrator.results import recorder
    run = tmp_path / "run"
    run.mkdir()
    path = run / "results.json"
    if what == "fifo":
        os.mkfifo(path)          # reading it would block for ever
    elif what == "directory":
        path.mkdir()
    elif what == "huge":
        shutil.copy(REAL, path)
        monkeypatch.setattr(recorder, "MAX_RESULTS_BYTES", 1000)
    elif what == "not utf-8":
        path.write_bytes(b'{"run_id": "\xff"}')
    else:
        path.write_text("{cases: [")
    code = main(["report", "--out", str(tmp_path / "out"), str(run)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"orchestrator: {path}: ") and len(err.splitlines()) == 1, err


def test_the_real_run_loads_as_its_record_and_is_written_back_the_same(tmp_path):
    from orchestrator.results.recorder import load_run, write_run
    run = load_run(REAL.parent)
    assert len(run.cases) == 63 and run.kernel.version and run.stages.suites.boots >= 1
    # A cached base written again (with the warnings of more files): the same record back.
    write_run(tmp_path, run)
    assert load_run(tmp_path) == run


def test_a_series_run_with_each_patch_tested_is_a_record():
    """EACH_PATCH=test writes its per-commit runs under series.each_patch: the record takes
    them (the hand-written schema before the model refused them, unseen until a reader)."""
    from orchestrator import model
    each = {"mode": "test", "built": 2, "first_failing": None,
            "tested": [{"number": 1, "run": "20261206-010101-x86_64-1-patch-1", "failing": [], "splats": 0}]}
    info = model.convert({"kind": "mbox", "spec": "v1.mbx", "title": "t", "base_commit": "a" * 40,
                          "tip_commit": "b" * 40, "worktree": "/w", "patches": [], "each_patch": each},
                         model.SeriesInfo)
    assert info.each_patch.tested[0].run.endswith("patch-1") and info.each_patch.mode == "test"


COMPARE = REAL.parent.parent / "x86_64-compare"


def _broken_comparison(doc: dict, how: str):
    d = copy.deepcopy(doc)
    if how == "diff a string":
        d["diff"] = "none"
    elif how == "a new failure's status a number":
        d["diff"]["newly_unsupported" if "newly_unsupported" in d["diff"] else "new_failures"] = [
            {"id": "kprobe/x.tc", "base": 5, "series": "FAIL"}]
    elif how == "regressed a string":
        d["diff"]["regressed"] = "yes"
    elif how == "no series":
        del d["series"]
    return d


COMPARE_WHERE = {"diff a string": "diff: expected `object`, got `str`",
                 "a new failure's status a number": "diff.coverage_lost[0].base: expected `str | null`, got `int`",
                 "regressed a string": "diff.regressed: expected `bool`, got `str`",
                 "no series": "the top level: object missing required field `series`"}


@pytest.mark.parametrize("how", list(COMPARE_WHERE))
def test_a_comparison_with_a_wrong_type_is_one_sentence_and_exit_2(tmp_path, capsys, how):
    """compare.json goes through the same loader: `report` of a series' -compare dir and
    --reply (which reads each arch's) name the file and the field."""
    from orchestrator.errors import OrchestratorError
    from orchestrator.series import reply
    d = tmp_path / "20261206-010101-x86_64-1-compare"
    d.mkdir()
    for side, run in (("base", "x86_64-base"), ("series", "x86_64-series")):
        (d / side).symlink_to(REAL.parent.parent / run)
    doc = json.loads((COMPARE / "compare.json").read_text())
    (d / "compare.json").write_text(json.dumps(_broken_comparison(doc, how)))
    code = main(["report", "--out", str(tmp_path / "out"), str(d)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"orchestrator: {d}/compare.json: {COMPARE_WHERE[how]}"), err
    assert len(err.splitlines()) == 1 and "internal error" not in err
    with pytest.raises(OrchestratorError, match=f"compare.json: {COMPARE_WHERE[how]}") as refused:
        reply.write(tmp_path / "reply.txt", [d])
    assert refused.value.code == 2 and not (tmp_path / "reply.txt").exists()


def test_a_comparison_of_an_older_version_is_read_with_its_old_name():
    """compare.json written before coverage_lost was named so (newly_unsupported) still reads."""
    from orchestrator.results.recorder import read_comparison
    assert "newly_unsupported" in (COMPARE / "compare.json").read_text()
    old = read_comparison(COMPARE)
    assert old.diff.regressed and [e.id for e in old.diff.new_failures]


@pytest.mark.parametrize("binary, allowed", [
    ("qemu-system-x86_64", True),                                              # the host's, on PATH
    ("/root/.cache/orchestrator/qemu/backports-10.0/root/usr/bin/qemu-system-x86_64", True),   # unpacked
    ("/tmp/evil", False), ("sh", False), ("qemu-system-aarch64", False),       # another arch's
    ("/root/.cache/orchestrator/qemu/backports-10.0/root/usr/bin/../../../../../../tmp/qemu-system-x86_64", False),
    ("/tmp/qemu/other-1.0/root/usr/bin/qemu-system-x86_64", False),
])
def test_shell_runs_only_a_qemu_the_tool_knows(tmp_path, capsys, binary, allowed):
    """`shell` boots the QEMU a results.json names: only the arch table's binary or a build
    the tool unpacks, never what a handed-over file says."""
    from orchestrator import shell
    run = tmp_path / "runs" / "20261206-010101-x86_64-1"
    run.mkdir(parents=True)
    doc = json.loads(REAL.read_text())
    kernel, initrd = tmp_path / "bzImage", tmp_path / "image.cpio"
    kernel.touch()
    initrd.touch()
    doc["qemu_argv"] = [binary, "-kernel", str(kernel), "-initrd", str(initrd), "-append", "console=ttyS0",
                        "-serial", "stdio"]
    (run / "results.json").write_text(json.dumps(doc))
    if allowed:
        assert shell.shell_argv(run)[0] == binary
    else:
        code = main(["shell", "--arch", "x86_64", "--results-dir", str(run.parent)])
        err = capsys.readouterr().err
        assert code == 2 and "which is neither the arch table's nor a build this tool unpacks" in err, err
