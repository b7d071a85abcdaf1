"""The arches of one series side by side (orchestrator/series/lanes.py): each arch in a
thread and a worktree of its own, one kernel build at a time, a stop reaching every arch."""
from __future__ import annotations

import io
import os
import pathlib
import signal
import subprocess
import threading
import time

import pytest

from orchestrator import hosttools
from orchestrator.errors import ExitCode, OrchestratorError
from orchestrator.kernel.source import KernelTree
from orchestrator.progress import Progress
from orchestrator.series import patches
from orchestrator.series.lanes import LanesInterrupted, run_side_by_side


def _progress() -> tuple[Progress, io.StringIO]:
    out = io.StringIO()
    return Progress(out), out


def _fatal(exc: OrchestratorError) -> bool:
    return exc.code == ExitCode.BAD_INPUT


def test_every_arch_gets_its_result_in_the_order_given_and_they_run_at_once():
    progress, out = _progress()
    started = {}
    both_running = threading.Barrier(3, timeout=10)

    def one(arch, lane_progress):
        started[arch] = time.monotonic()
        lane_progress.say("built")
        both_running.wait()    # fails (BrokenBarrierError) unless all three run at once
        if arch == "riscv64":
            raise OrchestratorError("riscv64 did not boot", ExitCode.BOOT_FAILED)
        return {"x86_64": 0, "arm64": 1}[arch], pathlib.Path(f"/r/{arch}-compare")

    lanes = run_side_by_side(["x86_64", "arm64", "riscv64"], one, progress, _fatal)
    assert [(lane.arch, lane.code, lane.compare_dir) for lane in lanes] == [
        ("x86_64", 0, pathlib.Path("/r/x86_64-compare")), ("arm64", 1, pathlib.Path("/r/arm64-compare")),
        ("riscv64", None, None)]
    # A series' own fault on one arch is that arch's result, not the end of the others.
    assert lanes[2].error.code == ExitCode.BOOT_FAILED
    # Each arch's lines are led by its name.
    assert sorted(line for line in out.getvalue().splitlines() if line.endswith("built")) == [
        "arm64: built", "riscv64: built", "x86_64: built"]


def test_an_error_that_is_the_same_on_every_arch_stops_the_others_and_their_children():
    """A series that does not apply (or bad input) fails on every arch alike: the first
    arch to meet it ends the others, a child they wait on included, and it is raised."""
    progress, _ = _progress()
    sleepers: list[int] = []

    def one(arch, lane_progress):
        if arch == "arm64":
            time.sleep(0.5)
            raise OrchestratorError("The series does not apply.", ExitCode.BAD_INPUT)
        proc_marker = f"kto-lanes-{os.getpid()}-{arch}"
        sleepers.append(1)
        hosttools.run_tree(["sh", "-c", f"exec -a {proc_marker} sleep 60"])
        return 0, None

    t0 = time.monotonic()
    with pytest.raises(OrchestratorError, match="does not apply"):
        run_side_by_side(["x86_64", "arm64"], one, progress, _fatal)
    assert time.monotonic() - t0 < 15 and sleepers == [1]
    time.sleep(0.5)
    left = subprocess.run(["pgrep", "-f", f"kto-lanes-{os.getpid()}-"], capture_output=True, text=True).stdout
    assert left == "", "the other arch's child outlived the stop"


def test_a_stop_of_the_run_reaches_every_arch_and_each_ends_its_own_way():
    """SIGTERM or Ctrl-C reaches the main thread only: every arch's thread is told, ends
    (its finally blocks run: no QEMU, no make left), and the interruption is raised."""
    progress, _ = _progress()
    cleaned = []

    def one(arch, lane_progress):
        try:
            hosttools.run_tree(["sleep", "60"])
        finally:
            cleaned.append(arch)
        return 0, None

    def interrupt_soon():
        time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_soon).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_side_by_side(["x86_64", "arm64", "riscv64"], one, progress, _fatal)
    assert time.monotonic() - t0 < 15
    assert sorted(cleaned) == ["arm64", "riscv64", "x86_64"]


def test_a_bug_in_one_arch_is_raised_after_the_others_are_stopped():
    progress, _ = _progress()

    def one(arch, lane_progress):
        if arch == "arm64":
            raise ValueError("a bug")
        while True:
            time.sleep(0.05)

    with pytest.raises(ValueError, match="a bug"):
        run_side_by_side(["x86_64", "arm64"], one, progress, _fatal)


def test_the_interruption_an_arch_gets_is_a_keyboard_interrupt():
    # run_test records a run it ends this way as incomplete, as it does for a Ctrl-C.
    assert issubclass(LanesInterrupted, KeyboardInterrupt)


def test_each_arch_has_its_own_worktree_and_lock(tmp_path):
    tree = KernelTree(path=tmp_path / "linux-7.2", tree_id="git:0", version="7.2.0", origin="test", git_commit=None)
    x86, arm = (patches.worktree_for(tree, tmp_path, a) for a in ("x86_64", "arm64"))
    assert x86 != arm and x86.parent == arm.parent == tmp_path / "worktrees"
    # Both locks held at once: neither waits for the other.
    with patches.worktree_lock(tree, tmp_path, "x86_64"), patches.worktree_lock(tree, tmp_path, "arm64"):
        pass
    assert {p.name for p in (tmp_path / "worktrees").iterdir()} == {x86.name + ".lock", arm.name + ".lock"}


def test_two_arches_of_one_run_build_one_at_a_time(tmp_path):
    """The build lock is a file lock every run takes; threads of one run contend for it
    too, and the one that waits says it waits for another arch of this run."""
    from orchestrator.guest_setup import one_build_at_a_time
    from orchestrator.pipeline import TestOptions
    opts = TestOptions(arch="x86_64", cache_root=tmp_path, results_root=tmp_path / "r")
    inside, overlap, said = [], [], []

    class Say:
        def say(self, text):
            said.append(text)

    def build(name):
        with one_build_at_a_time(opts, Say()):
            if inside:
                overlap.append(name)
            inside.append(name)
            time.sleep(1.2)
            inside.remove(name)

    threads = [threading.Thread(target=build, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlap == []
    assert any(s.startswith("waiting for another arch of this run that holds the lock on kernel builds")
               for s in said), said
    assert (tmp_path / "locks" / "prepare.lock").exists()
