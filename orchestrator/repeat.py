"""`--repeat N` (REPEAT=N): the selected cases N times on the same kernel, and how often
each failed. For a case that fails one run in eight, which one run cannot show.

Each try is a run of its own (results/<run>-repeatK): a fresh boot of the same kernel and
image (the build is reused), so no try inherits what an earlier one left in the kernel (a
registered probe, a tainted kernel, an ftrace that gave up) and each case's rate is its
own. Every try also lands in the kernel's history (results/history.py), which later
comparisons weigh. `--until-fail` stops at the first try in which a case fails.
"""
from __future__ import annotations

import os

from . import cache
from .errors import ExitCode, OrchestratorError
from .model import RunRecord
from .pipeline import RunContext, TestOptions, run_test
from .progress import Progress, printable
from .results.recorder import new_run_id, point_latest
from .suites.status import FAILING


def _try(opts: TestOptions, progress: Progress, k: int) -> RunRecord:
    """One try; a guest that does not boot is a try whose cases all count as failed."""
    try:
        return run_test(opts, progress, RunContext(label=f"repeat{k}", quiet=True))[1]
    except OrchestratorError as exc:
        if exc.results is None or exc.code != ExitCode.BOOT_FAILED:
            raise
        return exc.results


def tally(runs: list[RunRecord]) -> list[str]:
    """One line per case: `kprobe/x.tc: failed 2 of 10 runs (PASS 8, FAIL 2); splats: ...`,
    the cases that failed at least once first, by how often."""
    statuses: dict[str, list[str]] = {}
    splats: dict[str, list[str]] = {}
    for run in runs:
        for c in run.cases:
            statuses.setdefault(c.id, []).append(c.status)
        for s in run.splats:
            if s.case:
                splats.setdefault(s.case, [])
                if s.title not in splats[s.case]:
                    splats[s.case].append(s.title)
    for run in runs:   # a try whose guest did not boot: every case failed in it
        if not run.cases and run.stages.boot is not None and run.stages.boot.state == "failed":
            for seen in statuses.values():
                seen.append("ERROR")
    rows = []
    for case_id, seen in statuses.items():
        failed = sum(s in FAILING for s in seen)
        counts = ", ".join(f"{st} {seen.count(st)}" for st in dict.fromkeys(seen))
        line = f"{case_id}: failed {failed} of {len(seen)} runs ({counts})"
        if splats.get(case_id):
            line += f"; splats: {'; '.join(t[:80] for t in splats[case_id][:3])}"
        rows.append((-failed, case_id, line))
    return [line for _, _, line in sorted(rows)]


def repeat(opts: TestOptions, progress: Progress, times: int, until_fail: bool = False) -> int:
    """Exit 1 when a case failed in any try, 0 when none did."""
    progress.say(f"repeat: up to {times} runs of the selected cases, each in a fresh guest on the same "
                 "kernel (no try inherits the kernel state an earlier one left)"
                 + ("; stopping at the first failure" if until_fail else ""))
    runs: list[RunRecord] = []
    for k in range(1, times + 1):
        run = _try(opts, progress, k)
        runs.append(run)
        if until_fail and (any(c.status in FAILING for c in run.cases) or not run.cases):
            progress.say(f"repeat: a case failed in try {k}; stopping (--until-fail)")
            break
    lines = tally(runs)
    out_dir = opts.results_root / (new_run_id(runs[0].arch) + "-repeat")
    out_dir.mkdir(parents=True, exist_ok=True)
    for run in runs:
        link = out_dir / run.run_id.rsplit("-", 1)[-1]
        link.symlink_to(os.path.relpath(opts.results_root / run.run_id, out_dir))
    text = (f"{runs[0].arch}: Linux {runs[0].kernel.version}, {len(runs)} run(s) of {len(lines)} case(s), "
            "each in a fresh guest\n" + "\n".join(f"  {line}" for line in lines) + "\n")
    text = printable(text)
    cache.atomic_write(out_dir / "summary.txt", text)
    point_latest(opts.results_root, out_dir.name)
    print(f"\n{text}  repeat: {out_dir}")
    failed = any(c.status in FAILING for run in runs for c in run.cases) or any(not r.cases for r in runs)
    return int(ExitCode.TEST_FAILURES if failed else ExitCode.OK)
