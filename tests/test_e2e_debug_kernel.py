"""KCONFIG=debug end to end: a series whose kprobe handler may sleep (might_sleep() in the
dispatcher) changes nothing on the default kernel and is caught by the debug one, its
report located at the patched line and charged to the patch.

The debug kernel is a build of its own (KASAN and lockdep: about 1.5 times the default
build, cold, on 2 cores), more than CI's budget holds beside the rest: `make check` leaves
this module out (`-m "not debug_kernel"`), `make check-debug` runs it.
"""
import json
import re
import subprocess
import sys

import pytest

from conftest import CACHE_ROOT, series_on_default_tree

from orchestrator.project import PROJECT_ROOT as REPO  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.debug_kernel]
SLEEPY = ("tracing/kprobes: Let the dispatcher wait for its event file",
          [("kernel/trace/trace_kprobe.c", "\tint ret = 0;\n\n\traw_cpu_inc(*tk->nhit);\n",
            "\tint ret = 0;\n\n\tmight_sleep();\n\traw_cpu_inc(*tk->nhit);\n")])
CASE = "kprobe/kprobe_args.tc"


@pytest.fixture(scope="module")
def sleepy(tmp_path_factory):
    return series_on_default_tree(tmp_path_factory.mktemp("series"), "sleepy", [SLEEPY])


def _series_run(results, series, *extra):
    return subprocess.run([sys.executable, "-m", "orchestrator", "test", "--arch", "x86_64", "--suite", "kprobe",
                           "--case", CASE, "--series", str(series), "--compare-base", "--results-dir", str(results),
                           "--cache-dir", str(CACHE_ROOT), *extra], cwd=REPO, capture_output=True, text=True,
                          timeout=5400)


def test_might_sleep_in_a_probe_handler_shows_only_on_the_debug_kernel(sleepy, tmp_path):
    plain = _series_run(tmp_path / "default", sleepy)
    print(plain.stdout[-3000:], plain.stderr[-2000:])
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert "no difference between base and series" in plain.stdout

    debug = _series_run(tmp_path / "debug", sleepy, "--kconfig", "debug")
    print(debug.stdout[-5000:], debug.stderr[-3000:])
    assert debug.returncode == 1, debug.stderr[-3000:]
    latest = (tmp_path / "debug" / "latest").resolve()
    report = json.loads((latest / "compare.json").read_text())
    sleeps = [s for s in report["diff"]["new_splats"]
              if s["title"].startswith("BUG: sleeping function called from invalid context at "
                                       "kernel/trace/trace_kprobe.c:")]
    assert sleeps, [s["title"] for s in report["diff"]["new_splats"]]
    att = sleeps[0]["attributed"]
    assert att["patch"] == 1 and att["file"] == "kernel/trace/trace_kprobe.c"
    # The debug kernel is built apart from the default one, and both stay.
    series = json.loads((latest / "series" / "results.json").read_text())
    assert series["stages"]["build"]["build_dir"].endswith(("x86_64-debug", "x86_64-debug-view"))
    assert "CONFIG_DEBUG_ATOMIC_SLEEP=y" in (latest / "series" / "config").read_text()
    summary = (latest / "summary.txt").read_text()
    assert re.search(r"in a line patch 1/1 changed: kernel/trace/trace_kprobe\.c:\d+", summary), summary


LEAKY = ("tracing/kprobes: Let trace_probe_cleanup() free the symbol and the hit counter",
         [("kernel/trace/trace_kprobe.c",
           "\t\ttrace_probe_cleanup(&tk->tp);\n\t\tkfree(tk->symbol);\n\t\tfree_percpu(tk->nhit);\n",
           "\t\ttrace_probe_cleanup(&tk->tp);\n")])
EVENTS_DIR = REPO / "tests" / "faults" / "tc_events"


def test_a_series_that_leaks_gets_the_leaks_of_the_debug_kernels_scan(tmp_path_factory, tmp_path):
    """kmemleak after the suites: each leak a new splat named by its allocating function,
    counted, its frames decoded from the allocating line down; the base had none."""
    leaky = series_on_default_tree(tmp_path_factory.mktemp("series"), "leaky", [LEAKY])
    p = subprocess.run([sys.executable, "-m", "orchestrator", "test", "--arch", "x86_64", "--suite", "tcscripts",
                        "--tcdir", str(EVENTS_DIR), "--series", str(leaky), "--compare-base", "--kconfig", "debug",
                        "--results-dir", str(tmp_path), "--cache-dir", str(CACHE_ROOT)],
                       cwd=REPO, capture_output=True, text=True, timeout=5400)
    print(p.stdout[-5000:], p.stderr[-3000:])
    assert p.returncode == 1, p.stderr[-3000:]
    latest = (tmp_path / "latest").resolve()
    report = json.loads((latest / "compare.json").read_text())
    leaks = {s["title"]: s for s in report["diff"]["new_splats"] if s["kind"] == "leak"}
    assert set(leaks) == {"kmemleak: memory leak in alloc_trace_kprobe (pcpu_alloc_noprof, size 8)",
                          "kmemleak: memory leak in alloc_trace_kprobe (kstrdup, size 16)"}, leaks
    series = json.loads((latest / "series" / "results.json").read_text())
    base = json.loads((latest / "base" / "results.json").read_text())
    assert [s for s in base["splats"] if s["kind"] == "leak"] == []
    assert base["stages"]["suites"]["leak_scan_seconds"] and series["stages"]["suites"]["leak_scan_seconds"]
    # kmemleak finds most of the 30 (a stale copy of a pointer on a stack hides one).
    assert all(s["count"] >= 10 for s in series["splats"] if s["kind"] == "leak")
    summary = (latest / "summary.txt").read_text()
    assert re.search(r"alloc_trace_kprobe\+0x[0-9a-f]+/0x[0-9a-f]+ \(kernel/trace/trace_kprobe\.c:\d+\)", summary)
