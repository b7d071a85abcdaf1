"""The pytest plugin, run with pytest's own pytester: the plugin is inert without --arch,
names its items per arch, and (e2e) runs real guests on two xdist workers, with the
same statuses as `orchestrator test` on the same cases."""
import json
import os
import subprocess
import sys
import pathlib
import xml.etree.ElementTree as ET

import pytest

from conftest import CACHE_ROOT, DEFAULT_BANNER, run_orchestrator_test
from orchestrator.suites.runner import list_cases

from orchestrator.project import PROJECT_ROOT as REPO  # noqa: E402
STATUS_TC = REPO / "tests" / "faults" / "tc_status"
SSH_TC = REPO / "tests" / "faults" / "tc_ssh"
SCHEMA = REPO / "schema" / "results.schema.json"

pytest_plugins = ["pytester"]


def _cache_args() -> tuple[str, str]:
    """pytester points HOME at a fresh directory: the runs it starts use this machine's
    cache (the tree, builds, ccache) only when told where it is."""
    return ("--orchestrator-cache-dir", str(CACHE_ROOT))

# What each ftracetest status becomes in pytest (the plugin's docstring; the map).
OUTCOME = {"PASS": "passed", "FAIL": "failed", "UNRESOLVED": "failed", "ERROR": "failed",
           "UNSUPPORTED": "skipped", "UNTESTED": "skipped", "SKIP": "skipped", "XFAIL": "xfailed"}


def test_inert_without_arch(pytester):
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "orchestrator" not in result.stdout.str().split("passed")[-1]


def test_bad_arch_is_one_sentence_and_a_usage_error(pytester):
    result = pytester.runpytest_subprocess("--arch", "vax", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    err = result.stderr.str()
    assert "Unknown arch 'vax'; valid arch names are:" in err and "x86_64" in err


def test_collect_only_names_every_case_per_arch(pytester, default_tree):
    result = pytester.runpytest_subprocess("--arch", "x86_64,arm64", "--suite", "dynevent,kprobe",
                                           "--collect-only", "-q", "-p", "no:cacheprovider", *_cache_args())
    assert result.ret == 0, result.stderr.str()
    ids = [l for l in result.stdout.lines if "::" in l]
    expected = [c.id for c in list_cases(default_tree, ["dynevent", "kprobe"])]
    assert ids == [f"x86_64::{c}" for c in expected] + [f"arm64::{c}" for c in expected]
    assert "x86_64::dynevent/add_remove_fprobe.tc" in ids
    assert f"{len(ids)} tests collected" in result.stdout.str()


def test_tcdir_that_is_no_directory_is_a_usage_error(pytester):
    result = pytester.runpytest_subprocess("--arch", "x86_64", "--tcdir", "/nonexistent/tc",
                                           "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--tcdir /nonexistent/tc is not a directory" in result.stderr.str()


@pytest.fixture(scope="session")
def default_tree():
    from orchestrator.kernel.source import default_tree as tree
    return tree(CACHE_ROOT, say=lambda *_: None).path


# -- real guests --------------------------------------------------------------------

def _orchestrator_test(results: pathlib.Path, *args: str) -> dict:
    p, _ = run_orchestrator_test(results, *args)
    print(p.stdout[-3000:], p.stderr[-2000:])
    return json.loads((results / "latest" / "results.json").read_text())


def _pytest_run(pytester, results: pathlib.Path, *args: str):
    junit = results / "pytest-junit.xml"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--arch", "x86_64", "--orchestrator-results-dir", str(results),
        "--junitxml", str(junit), "-rA", *_cache_args(), *args, timeout=3600)
    print(result.stdout.str()[-4000:])
    (run_dir,) = [d for d in results.iterdir() if d.name.endswith("-pytest")]
    return result, json.loads((run_dir / "results.json").read_text()), run_dir, ET.parse(junit).getroot()


def _outcomes(junit) -> dict[str, str]:
    """Item id -> pytest outcome, from pytest's own --junitxml."""
    out = {}
    for case in junit.iter("testcase"):
        kinds = {child.tag: child.get("type", "") for child in case}
        outcome = ("failed" if "failure" in kinds else "error" if "error" in kinds
                   else "xfailed" if kinds.get("skipped") == "pytest.xfail"
                   else "skipped" if "skipped" in kinds else "passed")
        out[f"{case.get('classname')}::{case.get('name')}"] = outcome
    return out


def _check_merged(data: dict, run_dir: pathlib.Path, workers: int) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    assert data["state"] == "complete"
    ran = data["pytest"]["workers"]
    assert len(ran) == workers and all(w["cases"] > 0 and w["boots"] >= 1 for w in ran), ran
    assert sum(w["cases"] for w in ran) == len({c["id"] for c in data["cases"]})
    for w in ran:
        assert DEFAULT_BANNER.encode() in (run_dir / w["console_log"]).read_bytes()
    for name in ("junit.xml", "report.html", "summary.txt", "console.log"):
        assert (run_dir / name).stat().st_size > 0, name


# What `orchestrator test` gives each case of tests/faults/tc_status (the next test checks it).
STATUS_OF_TC_STATUS = {
    "tcscripts/01_pass.tc": "PASS", "tcscripts/02_fail.tc": "FAIL",
    "tcscripts/03_unsupported.tc": "UNSUPPORTED", "tcscripts/04_xfail.tc": "XFAIL",
    "tcscripts/05_unresolved.tc": "UNRESOLVED", "tcscripts/06_untested.tc": "UNTESTED",
    "tcscripts/07_guest_dies.tc": "ERROR", "tcscripts/08_after_death.tc": "PASS"}


@pytest.mark.e2e
def test_status_map_and_guest_death_on_two_workers(pytester, tmp_path):
    """The same .tc cases through `orchestrator test` and through pytest -n 2: every case
    has the same status, each status maps to its pytest outcome, and the guest that
    goes away mid-item costs that item only."""
    serial = _orchestrator_test(tmp_path / "serial", "--suite", "tcscripts", "--tcdir", str(STATUS_TC))
    result, data, run_dir, junit = _pytest_run(
        pytester, tmp_path / "pytest", "-n", "2", "--suite", "tcscripts", "--tcdir", str(STATUS_TC))
    want = {c["id"]: c["status"] for c in serial["cases"]}
    assert want == STATUS_OF_TC_STATUS
    assert {c["id"]: c["status"] for c in data["cases"]} == want
    assert _outcomes(junit) == {f"x86_64::{k}": OUTCOME[v] for k, v in want.items()}
    result.assert_outcomes(passed=2, failed=3, skipped=2, xfailed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    assert "UNSUPPORTED" in out and "the guest died during the case" in out
    died = next(c for c in data["cases"] if c["id"] == "tcscripts/07_guest_dies.tc")
    assert "the guest died during the case" in died["reason"] and died["log"].strip()
    after = next(c for c in data["cases"] if c["id"] == "tcscripts/08_after_death.tc")
    if after["worker"] == died["worker"]:
        assert after["boot"] == died["boot"] + 1   # that worker's guest was restarted
    _check_merged(data, run_dir, workers=2)
    assert sorted(_outcomes(junit)) == [f"x86_64::tcscripts/{p.name}" for p in sorted(STATUS_TC.glob("*.tc"))]


@pytest.mark.e2e
def test_default_suites_two_workers_same_counts_as_make_test(pytester, tmp_path, e2e_first_run):
    """The issue's check: every dynevent and kprobe case as its own item on two VMs, with
    the counts of `make test ARCH=x86_64` (the e2e module's first run)."""
    reference = json.loads((e2e_first_run / "results.json").read_text())
    kernel = pathlib.Path(reference["stages"]["build"]["build_dir"]) / "arch/x86/boot/bzImage"
    built_at = kernel.stat().st_mtime_ns
    result, data, run_dir, _ = _pytest_run(pytester, tmp_path, "-n", "2", "--suite", "dynevent,kprobe")
    _compare_upstream(reference, data, result)
    _check_merged(data, run_dir, workers=2)
    # One build for every worker, and here none at all: make test built this kernel.
    assert data["stages"]["build"]["reused"] is True and data["stages"]["image"]["reused"] is True
    assert kernel.stat().st_mtime_ns == built_at
    for worker in data["pytest"]["workers"]:   # each worker found the controller's build
        assert "build x86_64: reused" in (run_dir / f"progress-{worker['worker']}.log").read_text()


@pytest.mark.e2e
def test_ssh_transport_two_workers_same_counts_as_make_test(pytester, tmp_path, e2e_first_run):
    reference = json.loads((e2e_first_run / "results.json").read_text())
    result, data, run_dir, _ = _pytest_run(pytester, tmp_path, "-n", "2", "--suite", "dynevent,kprobe",
                                           "--transport", "ssh")
    _compare_upstream(reference, data, result)
    _check_merged(data, run_dir, workers=2)
    assert data["transport"]["name"] == "ssh" and data["transport"]["connects"] >= 2


def _compare_upstream(reference: dict, data: dict, result) -> None:
    ref = {c["id"]: c["status"] for c in reference["cases"] if c["suite"] in ("dynevent", "kprobe")}
    got = {c["id"]: c["status"] for c in data["cases"]}
    assert got == ref
    counts = {"passed": 0, "failed": 0, "skipped": 0, "xfailed": 0}
    for status in ref.values():
        counts[OUTCOME[status]] += 1
    result.assert_outcomes(**counts)


@pytest.mark.e2e
def test_popen_and_ssh_gateways_merge_into_one_run(pytester, tmp_path):
    """Past one process: pytest-xdist's execnet gateways, one `--tx popen` and one
    `--tx ssh=` to a dropbear on the loopback of a network namespace made for this test
    (tests/netns_sshd.py, under `unshare --net --mount`). Every gateway runs cases, and
    their parts merge into one run with the statuses `orchestrator test` gives."""
    home = tmp_path / "sshhome"
    results = tmp_path / "results"
    junit = results / "pytest-junit.xml"
    ssh_tx = (f"ssh=-F {home / 'ssh_config'} 127.0.0.1"
              f"//python={sys.executable}//chdir={pytester.path}")
    # Paths as --option=PATH: for a gateway that is not a local popen, xdist rewrites every
    # argument that is an existing path relative to its rsync roots, and refuses one outside.
    pytest_argv = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--tx", "popen", "--tx", ssh_tx,
                   "--dist", "load", "--arch", "x86_64", f"--orchestrator-results-dir={results}",
                   f"--junitxml={junit}", "-rA", "=".join(_cache_args()),
                   "--suite", "tcscripts", f"--tcdir={STATUS_TC}"]
    env = dict(os.environ, HOME=str(home), PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    p = subprocess.run(["unshare", "--net", "--mount", "--", sys.executable, str(REPO / "tests" / "netns_sshd.py"),
                        str(home), "2222", "--", *pytest_argv],
                       cwd=pytester.path, env=env, capture_output=True, text=True, timeout=3600)
    print(p.stdout[-4000:], p.stderr[-3000:])
    assert p.returncode == pytest.ExitCode.TESTS_FAILED, p.stderr[-2000:]
    (run_dir,) = [d for d in results.iterdir() if d.name.endswith("-pytest")]
    data = json.loads((run_dir / "results.json").read_text())
    assert {c["id"]: c["status"] for c in data["cases"]} == STATUS_OF_TC_STATUS
    assert _outcomes(ET.parse(junit).getroot()) == {
        f"x86_64::{k}": OUTCOME[v] for k, v in STATUS_OF_TC_STATUS.items()}
    assert sorted(w["worker"] for w in data["pytest"]["workers"]) == ["gw0", "gw1"]
    _check_merged(data, run_dir, workers=2)
    # The ssh gateway really logged in: dropbear (logging to stderr) says so.
    assert "auth succeeded for 'root'" in p.stderr, p.stderr[-2000:]


@pytest.mark.e2e
def test_vms_per_arch_bounds_the_guests_of_an_arch(pytester, tmp_path):
    """Two workers, one guest allowed for the arch: every item goes to the worker that
    holds the arch's one group, the other boots nothing."""
    result, data, run_dir, junit = _pytest_run(
        pytester, tmp_path, "-n", "2", "--vms-per-arch", "1", "--suite", "tcscripts", "--tcdir", str(STATUS_TC))
    (worker,) = data["pytest"]["workers"]
    assert worker["cases"] == len(list(STATUS_TC.glob("*.tc")))
    assert {c["worker"] for c in data["cases"]} == {worker["worker"]}
    # xdist names the group in the item id under loadgroup.
    assert all(name.endswith("@x86_64-vm0") for name in _outcomes(junit))


@pytest.mark.e2e
def test_a_guest_that_does_not_boot_fails_its_items_with_why(pytester, tmp_path):
    """No shell within 0.2 s (TCG needs about a second): every item of the arch fails
    with the reason, the run's results say the boot failed."""
    result, data, run_dir, junit = _pytest_run(
        pytester, tmp_path, "-n", "2", "--boot-timeout", "0.2", "--suite", "tcscripts", "--tcdir", str(STATUS_TC))
    assert set(_outcomes(junit).values()) == {"failed"}
    assert len(_outcomes(junit)) == len(list(STATUS_TC.glob("*.tc")))
    assert "the x86_64 guest did not boot (no shell within 0.2s)" in result.stdout.str()
    assert data["state"] == "failed" and data["exit_code"] == 6
    # Each item is an ERROR case of the run as well: results.json counts what pytest counts.
    assert sorted(c["id"] for c in data["cases"]) == [f"tcscripts/{p.name}" for p in sorted(STATUS_TC.glob("*.tc"))]
    assert {(c["status"], c["reason"]) for c in data["cases"]} == {
        ("ERROR", "the x86_64 guest did not boot (no shell within 0.2s)")}
    assert data["stages"]["boot"]["state"] == "failed"
    assert data["verdict"].startswith("The x86_64 guest did not boot (no shell within 0.2s)")
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))


@pytest.mark.e2e
def test_a_run_stopped_early_is_not_complete_and_fails_the_regression_check(pytester, tmp_path):
    """-x stops at the first failing case (02_fail.tc): what ran is kept, the run is
    incomplete (never complete with exit 0), and the matrix's regression check says so."""
    result, data, run_dir, _ = _pytest_run(pytester, tmp_path / "pytest", "-x", "--suite", "tcscripts",
                                           "--tcdir", str(STATUS_TC))
    assert [c["id"] for c in data["cases"]] == ["tcscripts/01_pass.tc", "tcscripts/02_fail.tc"]
    assert data["state"] == "incomplete" and data["exit_code"] == 130
    assert "6 of 8 selected case(s) have no result (pytest stopped early)" in data["verdict"]
    check = subprocess.run([sys.executable, "-m", "orchestrator", "report", "--fail-on-regression", str(run_dir)],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert check.returncode == 1 and "incomplete" in check.stdout + check.stderr


@pytest.mark.e2e
def test_a_k_selection_is_complete_when_its_cases_ran(pytester, tmp_path):
    """-k selects two of the eight cases: the run expects just those."""
    result, data, run_dir, _ = _pytest_run(pytester, tmp_path / "pytest", "-k", "01_pass or 04_xfail",
                                           "--suite", "tcscripts", "--tcdir", str(STATUS_TC))
    assert sorted(c["id"] for c in data["cases"]) == ["tcscripts/01_pass.tc", "tcscripts/04_xfail.tc"]
    assert data["state"] == "complete" and data["exit_code"] == 0


LONG_TC = REPO / "tests" / "faults" / "tc_long"


def _descendants(pid: int) -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process below pid."""
    procs = {}
    for d in pathlib.Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
            procs[int(d.name)] = (ppid, cmd)
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, cmd) in procs.items():
            if ppid == parent:
                out.append((child, ppid, cmd))
                todo.append(child)
    return out


def _qemus_running(proc: subprocess.Popen, count: int, within: float = 1800) -> list[tuple[int, int]]:
    """(pid, parent pid) of the QEMUs below proc once `count` run at once; [] when that did
    not happen within `within` s or proc ended first."""
    import time
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and proc.poll() is None:
        qemus = [(pid, ppid) for pid, ppid, cmd in _descendants(proc.pid) if "qemu-system" in cmd]
        if len(qemus) >= count:
            return qemus
        time.sleep(0.5)
    return []


@pytest.mark.e2e
def test_a_worker_killed_mid_case_leaves_an_incomplete_run(tmp_path):
    """pytest -n 2 with one xdist worker SIGKILLed while its guest runs a case: the merged
    run keeps what finished, is not complete, the regression check fails it, and the dead
    worker's QEMU does not outlive it (its pty hangs up)."""
    import os
    import signal
    import time
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2",
                             "--arch", "x86_64", "--suite", "tcscripts", "--tcdir", str(LONG_TC),
                             "--orchestrator-results-dir", str(results), *_cache_args()],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    victim = None
    qemus = _qemus_running(proc, 2)
    if qemus:
        time.sleep(8)                   # both guests booted and into their first case
        victim_qemu, victim = qemus[0]
        os.kill(victim, signal.SIGKILL)
    assert victim is not None, "two guests never ran at once"
    out, _ = proc.communicate(timeout=1800)
    print(out[-4000:])
    (run_dir,) = [d for d in results.iterdir() if d.name.endswith("-pytest")]
    data = json.loads((run_dir / "results.json").read_text())
    assert data["state"] != "complete" and data["exit_code"] != 0, data["verdict"]
    assert 0 < len(data["cases"]) < 4
    check = subprocess.run([sys.executable, "-m", "orchestrator", "report", "--fail-on-regression", str(run_dir)],
                           cwd=REPO, capture_output=True, text=True, timeout=120)
    assert check.returncode == 1, check.stdout + check.stderr
    time.sleep(1)
    assert not pathlib.Path(f"/proc/{victim_qemu}").exists(), "the killed worker's QEMU outlived it"


@pytest.mark.e2e
def test_sigterm_ends_the_session_with_its_results_merged(tmp_path):
    """A CI cancel or a killed terminal (SIGTERM) mid-case ends the session as Ctrl-C does:
    the guest is stopped, and the run's results.json is merged from the parts and says it
    is incomplete (before, the process died there: results.json stayed `running`)."""
    import os
    import signal
    import time
    results = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
                             "--arch", "x86_64", "--suite", "tcscripts", "--tcdir", str(LONG_TC),
                             "--orchestrator-results-dir", str(results), *_cache_args()],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    qemu = None
    qemus = _qemus_running(proc, 1)
    if qemus:
        time.sleep(8)                   # booted, and into its first case
        qemu = qemus[0][0]
        proc.send_signal(signal.SIGTERM)
    assert qemu is not None, "the guest never started"
    out, _ = proc.communicate(timeout=300)
    print(out[-4000:])
    (run_dir,) = [d for d in results.iterdir() if d.name.endswith("-pytest")]
    data = json.loads((run_dir / "results.json").read_text())
    assert data["state"] == "incomplete", (data["state"], data["verdict"])
    time.sleep(1)
    assert not pathlib.Path(f"/proc/{qemu}").exists(), "QEMU outlived the session"
    assert not os.path.exists(f"/proc/{proc.pid}")
