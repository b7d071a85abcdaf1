"""--baseline: a run compared with a previous run of the same arch (the nightly's last
night), so the report says what changed since."""
from __future__ import annotations

import pathlib
from typing import Callable

from . import causes, compare, confirm
from ..model import Baseline, RunRecord
from ..progress import Progress
from .recorder import Recorder, load_run, read_run


def check(path: pathlib.Path) -> None:
    """--baseline given as a run directory: its results.json is readable, before any work."""
    if (path / "results.json").exists():
        load_run(path)


def find_baseline(path: pathlib.Path, arch: str, exclude: str) -> pathlib.Path | None:
    """The run dir itself, or the newest complete run of the arch under it (runs whose
    results.json is not readable are passed over)."""
    if (path / "results.json").is_file():
        return path if read_run(path) is not None else None
    found = []
    for f in list(path.glob("*/results.json")) + list(path.glob("*/*/results.json")):
        run = read_run(f.parent)
        if run is not None and run.arch == arch and run.state == "complete" and run.run_id != exclude:
            found.append((run.started_at, f.parent))
    return max(found)[1] if found else None


def compare_with(recorder: Recorder, path: pathlib.Path, progress: Progress,
                 tries: Callable[[list[str]], list[RunRecord]]) -> None:
    """The comparison with the newest complete run of the arch under `path`, each
    difference confirmed by `tries` (the cases again on this kernel; the baseline's
    kernel is an earlier run's and is not run again)."""
    run = recorder.record
    run_dir = find_baseline(path, run.arch, run.run_id)
    if run_dir is None:
        recorder.set("baseline", Baseline(path=str(path), note=f"no complete {run.arch} run under {path}"))
        progress.say(f"baseline: no complete {run.arch} run under {path}; nothing to compare with")
        return
    base = load_run(run_dir)
    diff = compare.compare(base, run, run_dir, recorder.dir)
    case_ids = confirm.targets(diff)
    runs = tries(case_ids) if case_ids else []
    # The baseline's kernel is not run again: a splat it did not show is judged by this
    # kernel's runs, and the emulator's known noise stays noise.
    diff = confirm.confirm(diff, [base], [run, *runs], known_noise=causes.known_splat)
    for line in confirm.flaky_lines(diff):
        progress.say(f"  since {base.run_id}: flaky {line}")
    recorder.set("baseline", Baseline(path=str(run_dir), run_id=base.run_id, diff=diff))
    for e in diff.new_failures:
        progress.say(f"  since {base.run_id}: {e.id} {e.base} -> {e.series}")
    for s in diff.new_splats:
        progress.say(f"  since {base.run_id}: new splat {s.title}")
