"""The matrix spec and the nightly workflow generated from it."""
from __future__ import annotations


import pytest
import yaml

from orchestrator.matrix import workflow as ciworkflow, spec as matrixspec
from orchestrator.errors import OrchestratorError

from orchestrator.project import PROJECT_ROOT as REPO  # noqa: E402


def test_committed_workflow_matches_the_spec():
    cells = matrixspec.load(REPO / "matrix.yaml")
    committed = (REPO / ".github/workflows/nightly.yml").read_text()
    assert committed == ciworkflow.render(cells, "matrix.yaml"), "run `make workflow` and commit the result"


def test_workflow_has_a_job_per_cell_and_a_merging_report():
    cells = matrixspec.load(REPO / "matrix.yaml")
    wf = yaml.safe_load((REPO / ".github/workflows/nightly.yml").read_text())
    jobs = wf["jobs"]
    assert set(jobs) == {c.job_id for c in cells} | {"report"}
    for c in cells:
        runs = [s.get("run", "") for s in jobs[c.job_id]["steps"]]
        assert any(f"--cell {c.name} " in r for r in runs)
        assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in jobs[c.job_id]["steps"])
        # The compiler cache survives from night to night, one per cell, where the cell's
        # cache dir puts it.
        kept = [s["with"] for s in jobs[c.job_id]["steps"] if s.get("with", {}).get("path", "").endswith("/ccache")]
        assert [k["key"] for k in kept] == [f"ccache-{c.job_id}-${{{{ github.run_id }}}}"] * 2
        assert kept[0]["restore-keys"] == f"ccache-{c.job_id}-"
        assert kept[0]["path"] == jobs[c.job_id]["env"]["ORCHESTRATOR_CACHE"] + "/ccache"
    # The runner's /dev/kvm reaches the container of the cells that can use it (x86_64 on
    # GitHub's x86_64 runners), and only those.
    for c in cells:
        options = jobs[c.job_id]["container"].get("options")
        assert options == ("--privileged" if c.arch == "x86_64" else None), (c.name, options)
    # Every cell's cap together fits the Actions cache of a repository (10 GB).
    caps = [int(jobs[c.job_id]["env"]["CCACHE_MAXSIZE"].removesuffix("M")) for c in cells]
    assert sum(caps) <= 10 * 1024 and min(caps) >= 500
    report = jobs["report"]
    assert report["needs"] == [c.job_id for c in cells] and report["if"] == "always()"
    assert any("--fail-on-regression" in s.get("run", "") for s in report["steps"])
    assert wf["on"]["schedule"][0]["cron"] == "17 2 * * *"   # the key is quoted: YAML 1.1 reads on as true


def test_the_default_spec_is_five_arches_of_debians_two_trees_and_a_debug_kernel_on_two():
    cells = matrixspec.load(REPO / "matrix.yaml")
    arches = ["x86_64", "arm64", "s390x", "riscv64", "loongarch64"]
    assert [c.arch for c in cells] == arches * 2 + ["x86_64", "arm64"]
    assert [c.tree for c in cells] == ["6.12"] * 5 + ["7.2"] * 7 and {c.series for c in cells} == {None}
    assert [c.name for c in cells if c.kconfig] == ["x86_64-debian-7.2-debug", "arm64-debian-7.2-debug"]
    assert {c.kconfig for c in cells if c.kconfig} == {("debug",)}
    assert cells[0].suites == ("dynevent", "kprobe", "tcscripts", "kprobe_multi")
    assert cells[0].name == "x86_64-debian-6.12" and cells[0].job_id == "x86_64-debian-6_12"
    assert cells[5].name == "x86_64-debian-7.2" and cells[5].kernel_name == "debian-7.2"


def test_per_kernel_settings_override_the_defaults():
    cells = matrixspec.parse("""
arches: [x86_64, arm64]
suites: [dynevent]
case_timeout: 100
kernels:
  - name: base
  - name: v4
    tree: /srv/linux
    series: v6.12..fprobe-v4
    compare: true
    suites: [kprobe, kprobe_multi]
    case_timeout: 600
""")
    assert [c.name for c in cells] == ["x86_64-base", "arm64-base", "x86_64-v4", "arm64-v4"]
    v4 = cells[2]
    assert (v4.tree, v4.series, v4.compare, v4.suites, v4.case_timeout) == (
        "/srv/linux", "v6.12..fprobe-v4", True, ("kprobe", "kprobe_multi"), 600.0)
    assert cells[0].suites == ("dynevent",) and cells[0].case_timeout == 100.0


@pytest.mark.parametrize("text,message", [
    ("arches: [x86_64]\nkernel: []\n", "the top level has an unknown key `kernel`; known keys: arches, kernels"),
    ("arches: [x86_64]\nkernels: [{name: a, branch: b}]\n", r"kernels\[1\] has an unknown key `branch`"),
    ("arches: [sparc]\n", "Unknown arch 'sparc'"),
    ("kernels: [{name: a}]\n", "names no arches"),
    ("arches: [x86_64]\ncase_timeout: soon\n", r"case_timeout: expected `float \| null`, got `str`"),
    ("arches: [x86_64]\ncase_timeout: -1\n", "not a finite number of seconds above 0"),
    # Every value's type, at any depth, before anything is fetched or built.
    ("arches: [x86_64]\nkernels: [{name: a, series: 5}]\n", r"kernels\[1\]\.series: expected `str \| null`, got `int`"),
    ("arches: [x86_64]\nkernels: [{name: a}, {name: 6.12}]\n", r"kernels\[2\]\.name: expected `str`, got `float`.*quote"),
    ("arches: [x86_64]\nkernels: [{name: a, compare: 'yes'}]\n", r"compare: expected `bool`, got `str`"),
    ("arches: [x86_64]\nkernels: [{tree: /srv/linux}]\n", r"kernels\[1\] needs a name"),
    ("arches: [x86_64]\nkernels: {name: a}\n", r"kernels: expected `array \| null`, got `object`"),
    ("arches: [x86_64, 5]\n", r"arches: expected `array \| str \| null`|arches\[2\]: expected `str`"),
    ("?\n", "has a key that is not a name"),
    # The name goes into CI job ids and command lines: a word, and each cell its own job.
    ("arches: [x86_64]\nkernels: [{name: 'a;b'}]\n", r"the name 'a;b' is not a word"),
    ("arches: [x86_64]\nkernels: [{name: '${{ secrets.TOKEN }}'}]\n", "is not a word"),
    ("arches: [x86_64]\nkernels: [{name: a.b}, {name: a_b}]\n", r"cells x86_64-a\.b and x86_64-a_b would be one CI job"),
    ('kernels: "\\uD800"\n', r"lone surrogate escape \('\\ud800'\)"),
    ("arches: [x86_64]\nkernels: [{name: a}, {name: a}]\n", "appear twice"),
    ("arches: [x86_64\n", "not valid YAML"),
])
def test_bad_specs_say_what_is_wrong(text, message):
    with pytest.raises(OrchestratorError, match=message):
        matrixspec.parse(text)


def test_a_cell_can_run_some_cases_only():
    cells = matrixspec.parse("arches: [x86_64]\ncases: 'kprobe/*'\nkernels:\n  - name: a\n"
                             "  - name: b\n    cases: [kprobe_args_user.tc, 'dynevent/*']\n")
    assert [c.cases for c in cells] == [("kprobe/*",), ("kprobe_args_user.tc", "dynevent/*")]


VALIDATOR = "@action-validator/cli@0.6.0"


@pytest.fixture(scope="module")
def action_validator():
    """GitHub's workflow schema checker from the npm registry, installed once into the cache."""
    import shutil
    import subprocess
    from orchestrator import cache
    if shutil.which("npm") is None:
        pytest.skip("npm not found (apt-get install npm): the workflow validator comes from the npm registry")
    prefix = cache.default_cache_root() / "npm"
    exe = prefix / "node_modules" / ".bin" / "action-validator"
    if not exe.exists():
        got = subprocess.run(["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                              "--silent", VALIDATOR], capture_output=True, text=True, timeout=600)
        assert got.returncode == 0, f"npm install {VALIDATOR} failed: {got.stderr[-800:]}"
    return exe


@pytest.mark.parametrize("spec", [
    None,   # the committed nightly.yml
    "arches: [x86_64, arm64]\nsuites: [dynevent]\ncase_timeout: 100\nkernels:\n  - name: base\n"
    "  - name: v4\n    tree: /srv/linux\n    series: v6.12..fprobe-v4\n    compare: true\n"
    "    cases: [kprobe_args_user.tc]\n    case_timeout: 600\n",
])
def test_every_generated_workflow_passes_github_s_schema(action_validator, tmp_path, spec):
    import subprocess
    if spec is None:
        path = REPO / ".github/workflows/nightly.yml"
    else:
        path = tmp_path / "nightly.yml"
        path.write_text(ciworkflow.render(matrixspec.parse(spec), "matrix.yaml"))
    got = subprocess.run([str(action_validator), str(path)], capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stdout[-2000:] + got.stderr[-500:]


def test_a_kernel_can_name_its_own_arches():
    cells = matrixspec.parse("arches: [x86_64, arm64, s390x]\nkernels:\n  - name: all\n"
                             "  - name: dbg\n    arches: x86_64 arm64\n    kconfig: [debug]\n")
    assert [c.name for c in cells] == ["x86_64-all", "arm64-all", "s390x-all", "x86_64-dbg", "arm64-dbg"]
    with pytest.raises(OrchestratorError, match="Unknown arch 'sparc'"):
        matrixspec.parse("arches: [x86_64]\nkernels:\n  - name: dbg\n    arches: [sparc]\n")
    with pytest.raises(OrchestratorError, match=r"kernels\[1\]\.arches"):
        matrixspec.parse("arches: [x86_64]\nkernels:\n  - name: dbg\n    arches: 5\n")
