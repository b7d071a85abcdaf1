"""Every command fed arbitrary values (hypothesis): the exit code is one the README
documents, no traceback, and nothing is written outside the results and cache dirs.

`test` is given a kernel path that does not exist, so every value it takes before the
tree is checked (arch, suites, timeouts, fragments, retries, transport...) and the run
stops before any build; `report` gets run directories holding arbitrary results.json
files; `workflow` an arbitrary matrix spec (its cells are not run)."""
from __future__ import annotations

import json
import os
import pathlib
import tempfile

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from orchestrator.cli.main import main  # noqa: E402
from orchestrator.errors import ExitCode  # noqa: E402

DOCUMENTED = {int(c) for c in ExitCode}
PROPS = settings(max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=30)
value = st.one_of(text, st.sampled_from(["x86_64", "arm64", "all", ",", "x86_64,", "nan", "inf", "-1", "0",
                                         "1e400", "dynevent", "ftrace-all", "tcscripts", "ssh", "99"]))


def _exit_code(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exc:          # argparse's own refusal: exit 2, one usage line
        code = exc.code if isinstance(exc.code, int) else 2
    err = capsys.readouterr().err
    return code, err


def _files_under(top: pathlib.Path) -> set[pathlib.Path]:
    return {p for p in top.rglob("*")} if top.exists() else set()


@PROPS
@given(arch=value, suite=value, timeout=value, kconfig=value, retries=value, transport=value)
def test_the_test_command_takes_any_value(tmp_path, capsys, arch, suite, timeout, kconfig, retries, transport):
    before = _files_under(tmp_path)
    results, cache = tmp_path / "results", tmp_path / "cache"
    code, err = _exit_code(["test", "--kernel", str(tmp_path / "no-such-tree"), "--arch", arch,
                            "--suite", suite, f"--case-timeout={timeout}", "--kconfig", kconfig,
                            f"--retries={retries}", f"--transport={transport}",
                            "--results-dir", str(results), "--cache-dir", str(cache)], capsys)
    assert code in DOCUMENTED and code != 0
    assert "Traceback" not in err and err.strip()
    written = _files_under(tmp_path) - before
    assert all(p.is_relative_to(results) or p.is_relative_to(cache) or p in (results, cache) for p in written)


anything = st.one_of(st.none(), st.booleans(), st.integers(), text, st.lists(text, max_size=3),
                    st.dictionaries(text, text, max_size=2))
# Runs that look right to a first glance: real statuses, fields of any type around them.
plausible_case = st.fixed_dictionaries(
    {"id": text, "status": st.sampled_from(["PASS", "FAIL", "ERROR", "SKIP", "XFAIL", "UNSUPPORTED"]),
     "suite": st.one_of(text, anything), "seconds": st.one_of(st.floats(0, 1e6), anything)},
    optional={k: anything for k in ("reason", "log", "description", "splats",
                                    "boot", "worker", "test_status")})
plausible_run = st.fixed_dictionaries(
    {"cases": st.lists(plausible_case, max_size=4)},
    optional={k: anything for k in ("splats", "state", "arch", "run_id", "label", "kernel", "stages",
                                    "baseline", "taint", "first_cause", "versions", "config", "counts",
                                    "started_at", "finished_at", "verdict", "accel", "series", "history")})
results_json = st.one_of(
    plausible_run.map(json.dumps),
    text,
    st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), text),
                 lambda inner: st.one_of(st.lists(inner, max_size=4),
                                         st.dictionaries(st.sampled_from(
                                             ["cases", "splats", "state", "arch", "run_id", "baseline", "id",
                                              "status", "kind", "title", "stages", "kernel", "diff"]),
                                             inner, max_size=6)),
                 max_leaves=20).map(json.dumps))


@PROPS
@given(docs=st.lists(results_json, min_size=1, max_size=3))
def test_the_report_command_takes_any_results_json(tmp_path, capsys, docs):
    tmp_path = pathlib.Path(tempfile.mkdtemp(dir=tmp_path))   # one per example
    runs = []
    for i, doc in enumerate(docs):
        d = tmp_path / f"run{i}"
        d.mkdir(exist_ok=True)
        (d / "results.json").write_text(doc)
        runs.append(str(d))
    out = tmp_path / "merged"
    code, err = _exit_code(["report", "--fail-on-regression", "--out", str(out), *runs], capsys)
    assert code in DOCUMENTED and "Traceback" not in err and "internal error" not in err, err
    assert {p.parent for p in tmp_path.rglob("*") if p.is_file()} <= {out, *map(pathlib.Path, runs)}


spec = st.one_of(text, st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(
        ["arches", "kernels", "name", "tree", "suites", "kconfig", "case_timeout", "boot_timeout",
         "series", "compare"]), inner, max_size=5)),
    max_leaves=15).map(json.dumps))   # JSON is YAML


@PROPS
@given(text_of_spec=spec)
def test_the_workflow_command_takes_any_spec(tmp_path, capsys, text_of_spec):
    tmp_path = pathlib.Path(tempfile.mkdtemp(dir=tmp_path))   # one per example
    f = tmp_path / "matrix.yaml"
    f.write_text(text_of_spec)
    code, err = _exit_code(["workflow", "--spec", str(f), "--out", str(tmp_path / "nightly.yml")], capsys)
    assert code in (0, 2) and "Traceback" not in err
    assert {p.name for p in tmp_path.iterdir()} <= {"matrix.yaml", "nightly.yml"}
    assert os.path.exists(tmp_path / "nightly.yml") == (code == 0)


@PROPS
@given(doc=results_json, command=st.sampled_from(["rerun", "baseline", "shell"]))
def test_every_reader_of_a_run_takes_any_results_json(tmp_path, capsys, doc, command):
    """--rerun, --baseline and shell read a run back as report does: a results.json they
    cannot take is one sentence and exit 2, never an internal error."""
    tmp_path = pathlib.Path(tempfile.mkdtemp(dir=tmp_path))   # one per example
    run = tmp_path / "runs" / "20261206-010101-x86_64-1"
    run.mkdir(parents=True)
    (run / "results.json").write_text(doc)
    argv = {"rerun": ["test", "--rerun", str(run), "--results-dir", str(tmp_path / "r")],
            "baseline": ["test", "--kernel", str(tmp_path / "no-tree"), "--baseline", str(run),
                         "--results-dir", str(tmp_path / "r")],
            "shell": ["shell", "--arch", "x86_64", "--results-dir", str(run.parent)]}[command]
    code, err = _exit_code(argv, capsys)
    assert code == 2, err
    assert "Traceback" not in err and "internal error" not in err and len(err.strip().splitlines()) == 1, err
