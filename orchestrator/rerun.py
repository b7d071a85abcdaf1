"""--rerun RUN: the cases of an earlier run that did not pass (nor fail as expected), run
again on the same kernel with the same suites and fragments, reported beside their first
result. The build is the one that run used (same tree, config, toolchain: reused)."""
from __future__ import annotations

import dataclasses
import pathlib

from .arches import get_arch
from .errors import OrchestratorError
from .kernel import source
from .kernel.fragments import fragments_for
from .model import RunRecord
from .pipeline import RunContext, TestOptions, run_test
from .progress import Progress, printable
from .vm import emulators
from .results.recorder import is_comparison, load_run
from .suites.status import PASSED


def rerun(opts: TestOptions, run_dir: pathlib.Path, progress: Progress) -> tuple[int, RunRecord | None]:
    if is_comparison(run_dir):   # a series run's results/latest: its series run is the one meant
        run_dir = (run_dir / "series").resolve()
    first = load_run(run_dir)
    again = [c.id for c in first.cases if c.status not in PASSED]
    if not again:
        progress.say(f"rerun: every case of {first.run_id} passed; nothing to run again")
        return 0, None
    kernel = first.kernel
    if not pathlib.Path(kernel.path).is_dir():
        raise OrchestratorError(
            f"--rerun {run_dir}: the kernel tree of run {first.run_id} ({kernel.path}) is gone; "
            "a rerun tests the same kernel: run the suites on a tree you have with `make test`.")
    tree = source.user_tree(kernel.path)
    if tree.tree_id != kernel.tree_id:
        raise OrchestratorError(
            f"--rerun {run_dir}: its kernel tree {kernel.path} has changed since that run "
            f"(tree id {tree.tree_id[:24]}, was {kernel.tree_id[:24]}); run the suites on it "
            "as it is now with `make test`, or restore it.")
    qemu_build = first.versions.qemu_build or emulators.build_for(first.arch, opts.qemu)
    arch = get_arch(first.arch, qemu_build)
    project = set(map(str, fragments_for(arch, []).project))
    opts = dataclasses.replace(opts, arch=arch.name, suites=list(first.suites or opts.suites), qemu=qemu_build,
                               extra_kconfigs=[f for f in first.fragments if f not in project])
    progress.say(f"rerun: {len(again)} case(s) of {first.run_id} that did not pass, on the same kernel")
    code, run = run_test(opts, progress, RunContext(tree=tree, label="rerun", only_cases=frozenset(again),
                                                     series=first.series))
    now = {c.id: c for c in run.cases}
    print(f"\nrerun of {first.run_id} ({len(again)} case(s)), first result -> now:")
    for c in first.cases:
        if c.id in again:
            n = now.get(c.id)
            print(printable(f"  {c.id}: {c.status} -> {n.status if n else 'not run'}"
                            + (f"  ({n.reason[:90]})" if n and n.reason else "")))
    return code, run
