"""A series run: apply the series in the tree's worktree, optionally build every patch,
test base+series, compare with the base (whose results are cached), and bisect a
regression down to the patch that caused it.

results/<run>-compare/ holds compare.json, summary.txt (the text for a reply) and links
to the base and series runs (and the bisect steps); results/latest points at it.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib

from ..kernel import build, buildwarn
from .. import cache
from ..results import causes, compare, confirm, history, report
from . import attribute, checks as series_checks, patches as series_mod
from ..errors import ExitCode, OrchestratorError
from ..suites.splats import splat_key
from ..suites.case_id import test_of
from ..suites.status import FAILING, SKIPPED
from ..run_inputs import arch_of
from ..pipeline import RunContext, TestOptions, base_pointer, build_only, inputs_digest, run_test, source_tree
from ..progress import Progress
from ..model import (Attribution, Bisect, BisectStep, Comparison, Diff, EachPatch, FirstFailing, PatchRun,
                     RunRecord, SeriesInfo)
from ..results.recorder import new_run_id, point_latest, read_run, write_comparison, write_run


@dataclasses.dataclass
class SeriesOptions:
    spec: str                 # mbox, directory, base..tip, or a branch (with base)
    base: str | None = None
    compare: bool = False
    each_patch: str | None = None   # "build" | "test": every commit of the series
    bisect: bool = False


def _cached_base(opts: TestOptions, base_tree_id: str) -> tuple[RunRecord, pathlib.Path] | None:
    """The newest complete run of every case on the base with these inputs: a series'
    own base run, or a plain `make test` of the tree at that commit."""
    ref = cache.read_json(base_pointer(opts, base_tree_id)) or {}
    run_dir = pathlib.Path(ref.get("results_dir", "/nonexistent"))
    run = read_run(run_dir)
    if run is not None and run.state == "complete" and run.kernel.tree_id == base_tree_id:
        return run, run_dir
    return None


def _run(opts: TestOptions, progress: Progress, ctx: RunContext) -> tuple[int, RunRecord, pathlib.Path]:
    """A bisect step or a try: a commit that does not build, or a guest that does not
    boot, is a result (with no cases), not the end of the run."""
    try:
        code, run = run_test(opts, progress, ctx)
    except OrchestratorError as exc:
        if exc.results is None or exc.code not in (ExitCode.BUILD_FAILED, ExitCode.BOOT_FAILED):
            raise
        code, run = int(exc.code), exc.results
    return code, run, opts.results_root / run.run_id


def _tries(opts: TestOptions, progress: Progress, tree, case_ids: list[str], label: str,
           retries: int, step_dirs: list[pathlib.Path], series: SeriesInfo | None = None,
           start: int = 1) -> list[RunRecord]:
    """The cases again, each try in a fresh guest (its own run, linked from the comparison);
    start: the number of the first of them (tries made before count)."""
    runs = []
    for k in range(start, start + retries):
        _, run, run_dir = _run(opts, progress, RunContext(
            tree=tree, label=f"{label}-try{k}", only_cases=frozenset(case_ids), series=series, quiet=True))
        step_dirs.append(run_dir)
        runs.append(run)
    return runs


def _each_patch(opts: TestOptions, progress: Progress, applied: series_mod.AppliedSeries,
                mode: str, step_dirs: list[pathlib.Path]) -> EachPatch:
    """Build (mode "build") or build and test (mode "test") every commit but the last,
    which the series run itself covers, in the one build dir."""
    patches = applied.series.patches
    result = EachPatch(mode=mode, built=0)
    for p in patches[:-1]:
        progress.say(f"each-patch: {'testing' if mode == 'test' else 'building'} "
                     f"{p.number}/{len(patches)} {p.subject}")
        series_mod.checkout(applied.worktree, p.commit or "")
        tree = series_mod.worktree_tree(applied.worktree, f"series patch {p.number}")
        error = None
        if mode == "test":
            code, run, run_dir = _run(opts, progress, RunContext(
                tree=tree, label=f"patch-{p.number}", series=applied.info()))
            step_dirs.append(run_dir)
            if code == ExitCode.BUILD_FAILED:
                build_stage = run.stages.build
                error = ((build_stage.first_errors if build_stage else None) or [run.verdict or "build failed"])[0]
            else:
                result.tested.append(PatchRun(number=p.number, run=run.run_id,
                                              failing=[c.id for c in run.cases if c.status in FAILING],
                                              splats=len(run.splats)))
        else:
            try:
                build_only(opts, tree, progress)
            except build.BuildFailed as exc:
                error = (exc.first_errors or [exc.message])[0]
        if error is not None:
            result.first_failing = FirstFailing(number=p.number, subject=p.subject, commit=p.commit, error=error)
            progress.say(f"each-patch: patch {p.number} does not build: {error}")
            break
        result.built += 1
    series_mod.checkout(applied.worktree, applied.tip_commit)
    if result.first_failing is None:
        result.built = len(patches)   # the last one is built by the series run
    return result


# What a bisect looks for in a step's runs: (kind, key), kind one of case (the case's own
# test fails), skipped (it no longer runs its check), absent (it is gone), splat (the key).
Target = tuple[str, str]


def _targets(diff: Diff) -> dict[str, Target]:
    """What to bisect: each case whose test fails (a case the series adds included), each
    case that no longer runs its check, and each new splat (once per kind of report) that
    no changed line already placed. A case that passed but is marked FAIL for a splat is
    the splat's target: whether a WARN_ONCE lands on it depends on what ran before it in
    the boot, which a bisect step that runs only a few cases does not reproduce. Likely
    (intermittent) regressions are not bisected: a step would need their many tries."""
    out = {e.id: ("case", e.id) for e in diff.new_failures if not e.test_status}
    out.update({e.id: ("case", e.id) for e in diff.new_cases_failing})
    out.update({e.id: ("skipped" if e.series else "absent", e.id) for e in diff.coverage_lost})
    seen = set()
    for s in diff.new_splats:
        key = splat_key(s)
        if key not in seen and not s.attributed:
            seen.add(key)
            out[f"splat {s.title}"] = ("splat", key)
    return out


def _shows_in(run: RunRecord, what: Target) -> bool:
    kind, key = what
    if kind == "case":
        # The case's own failure: a case the test passed but a splat marked FAIL shows the
        # splat (its own target), not this. With several guests a WARN_ONCE fires once per
        # guest, so at the splat's patch it can land on this very case.
        return any(c.id == key and (c.test_status or c.status) in FAILING for c in run.cases)
    if kind == "skipped":
        return any(c.id == key and c.status in SKIPPED for c in run.cases)
    if kind == "absent":
        return bool(run.cases) and not any(c.id == key for c in run.cases)
    return any(splat_key(s) == key for s in run.splats)


def _shows(runs: list[RunRecord], what: Target) -> bool | None:
    """Whether every try of a step shows the target (True), none does (False), or some
    do (None: the step cannot place it)."""
    seen = [_shows_in(r, what) for r in runs]
    return True if all(seen) else False if not any(seen) else None


def _bisect(opts: TestOptions, progress: Progress, applied: series_mod.AppliedSeries,
            diff: Diff, step_dirs: list[pathlib.Path], retries: int) -> Bisect:
    """The first patch showing each confirmed new failure or splat. A binary search per
    target, but one step runs every case concerned, so steps are shared between targets;
    each step builds incrementally in the one build dir and runs its cases 1 + retries
    times, so a step that shows a target only sometimes says so instead of misleading
    the search. The base and the tip were confirmed already: a one-patch series needs no
    step."""
    patches = applied.series.patches
    targets = _targets(diff)
    cases = frozenset({e.id for e in (*diff.new_failures, *diff.new_cases_failing, *diff.coverage_lost)} |
                      {s.case for s in diff.new_splats if s.case and not s.attributed})
    out = Bisect(patches=len(patches), steps=0, tries_per_step=1 + retries, cases=sorted(cases))
    if not targets:
        return out
    observed: dict[int, list[RunRecord] | None] = {}   # patch number -> its step's runs (None: no build)

    def step(k: int) -> list[RunRecord] | None:
        if k not in observed:
            p = patches[k - 1]
            progress.say(f"bisect: patch {k}/{len(patches)} {p.subject} ({len(cases)} case(s))")
            series_mod.checkout(applied.worktree, p.commit or "")
            tree = series_mod.worktree_tree(applied.worktree, f"series patch {k}")
            code, run, run_dir = _run(opts, progress, RunContext(
                tree=tree, label=f"bisect-{k}", only_cases=cases, series=applied.info()))
            step_dirs.append(run_dir)
            out.steps += 1
            built = code != ExitCode.BUILD_FAILED
            observed[k] = [run, *_tries(opts, progress, tree, sorted(cases), f"bisect-{k}", retries,
                                        step_dirs, applied.info())] if built else None
            out.tested.append(BisectStep(number=k, run=run.run_id, built=built))
        return observed[k]

    try:
        for name, what in targets.items():
            good, bad = 0, len(patches)   # the base does not show it, the tip does
            while bad - good > 1:
                mid = (good + bad) // 2
                runs = step(mid)
                if runs is None:
                    out.unresolved[name] = f"patch {mid} does not build; the first bad patch is one of {good + 1}..{bad}"
                    break
                shows = _shows(runs, what)
                if shows is None:
                    n = sum(_shows_in(r, what) for r in runs)
                    out.unresolved[name] = (f"patch {mid} shows it in {n} of {len(runs)} tries; the first "
                                            f"bad patch is one of {good + 1}..{bad}")
                    break
                if shows:
                    bad = mid
                else:
                    good = mid
            else:
                out.first_bad[name] = patches[bad - 1].record()
    finally:
        series_mod.checkout(applied.worktree, applied.tip_commit)
    return out


def _fill_base_warnings(opts: TestOptions, base: RunRecord, b_dir: pathlib.Path, files: list[str]) -> None:
    """A cached base was compiled for the files its first series touched (at the W= level
    of then); this series may touch others. Its build dir still holds the base when its
    stamp says so."""
    fresh = base.build_warnings_level == buildwarn.LEVEL
    missing = [f for f in files if f.endswith(".c") and (f not in base.build_warnings or not fresh)]
    build_stage = base.stages.build
    build_dir = pathlib.Path(build_stage.build_dir if build_stage and build_stage.build_dir else "/nonexistent")
    stamp = cache.read_json(build_dir / build.STAMP) or {}
    if missing and stamp.get("tree_id") == base.kernel.tree_id:
        found = buildwarn.warnings_for(build_dir, arch_of(opts), opts.cache_root, missing)
        base.build_warnings = ({**base.build_warnings, **found} if fresh else found)
        base.build_warnings_level = buildwarn.LEVEL
        # Kept in the base's results.json, so the comparison can be made again from it.
        write_run(b_dir, base)


def _link(parent: pathlib.Path, name: str, target: pathlib.Path) -> None:
    link = parent / name
    link.unlink(missing_ok=True)
    link.symlink_to(os.path.relpath(target, parent))


def _publish(opts: TestOptions, progress: Progress, out_dir: pathlib.Path | None,
             base: tuple[RunRecord, pathlib.Path], series: tuple[RunRecord, pathlib.Path],
             step_dirs: list[pathlib.Path], comparison: Comparison) -> pathlib.Path:
    """results/<run>-compare/ (made on the first call, written again on the next): links to
    the base, the series and every step run, compare.json, summary.txt (the reply's text),
    report.html; results/latest points at it."""
    (b_run, b_dir), (s_run, s_dir) = base, series
    if out_dir is None:
        out_dir = opts.results_root / (new_run_id(s_run.arch) + "-compare")
        out_dir.mkdir(parents=True, exist_ok=True)
    _link(out_dir, "base", b_dir)
    _link(out_dir, "series", s_dir)
    for d in step_dirs:   # ...-x86_64-1234-bisect-2 -> bisect-2, ...-patch-1 -> patch-1
        _link(out_dir, "-".join(d.name.rsplit("-", 2)[-2:]), d)
    write_comparison(out_dir, comparison)
    text = compare.mail_summary(comparison.diff, b_run, s_run, comparison.bisect, comparison.each_patch)
    cache.atomic_write(out_dir / "summary.txt", text + "\n")
    try:
        report.write_html(out_dir / "report.html", [(b_run, b_dir), (s_run, s_dir)], comparison=comparison.diff)
    except Exception as exc:  # noqa: BLE001 - the comparison is written already; the page is extra
        progress.say(f"orchestrator: {out_dir / 'report.html'} was not written ({exc}); "
                     f"`orchestrator report {b_dir} {s_dir} --out {out_dir}` makes it")
    point_latest(opts.results_root, out_dir.name)
    return out_dir


def _held_ids(run: RunRecord, case_ids: list[str]) -> list[str]:
    """The case files of case_ids that a side's first run holds (a case only one side has
    is tried on that side alone)."""
    held = {test_of(c.id) for c in run.cases}
    return [c for c in case_ids if c in held]


def _confirmed(opts: TestOptions, progress: Progress, retries: int, diff: Diff,
               base: tuple[RunRecord, object], series: tuple[RunRecord, object],
               applied: series_mod.AppliedSeries, step_dirs: list[pathlib.Path]) -> Diff:
    """The comparison judged over tries in fresh guests (results/confirm.py): `retries`
    of each differing case on both sides, then more, ROUND at a time, of the cases that
    are still unsettled, up to MAX_TRIES. The series first (the worktree is at its tip),
    then the base (in the tree itself, or the worktree checked out at the base and back
    to the tip after)."""
    (b_first, base_tree), (s_first, s_tree) = base, series
    digest = inputs_digest(opts)
    b_history_path = history.path_for(opts.cache_root, b_first.kernel.tree_id, digest)
    s_runs, b_runs = [s_first], [b_first]
    attributed: dict[str, Attribution] = {}
    blamed: set[str] = set()   # splat keys whose lines were looked up already
    patches = [p.record() for p in applied.series.patches]

    def judged() -> Diff:
        fresh = [sp for r in s_runs for sp in r.splats if splat_key(sp) not in blamed]
        blamed.update(splat_key(sp) for sp in fresh)
        attributed.update(attribute.attribute(fresh, applied.worktree, applied.base_commit, applied.tip_commit,
                                              patches))
        leave_out = {r.run_id for r in b_runs}
        return confirm.confirm(diff, b_runs, s_runs, history.window(b_history_path, leave_out),
                               attributed, causes.known_splat)

    case_ids = confirm.targets(diff)
    if not retries or not case_ids:
        return judged()
    progress.say(f"confirm: {len(case_ids)} case(s) differ between base and series; each side runs "
                 f"them {retries} more time(s) in fresh guests: {', '.join(case_ids[:6])}"
                 + (" ..." if len(case_ids) > 6 else ""))
    count, out = retries, None

    def series_tries(ids: list[str]) -> None:
        s_runs.extend(_tries(opts, progress, s_tree, ids, "series", count, step_dirs, applied.info(),
                             start=len(s_runs)))

    def base_tries(ids: list[str]) -> None:
        if base_tree is not None:
            b_runs.extend(_tries(opts, progress, base_tree, ids, "base", count, step_dirs, start=len(b_runs)))
            return
        try:
            series_mod.checkout(applied.worktree, applied.base_commit)
            tree_at_base = series_mod.worktree_tree(applied.worktree, f"the base {applied.base_commit[:12]}")
            b_runs.extend(_tries(opts, progress, tree_at_base, ids, "base", count, step_dirs, start=len(b_runs)))
        finally:
            series_mod.checkout(applied.worktree, applied.tip_commit)

    # The base in the worktree shares the series' build dir: each change of side rebuilds
    # (some 20 s). A round begins with the side the last one ended with, so it rebuilds
    # once, not twice.
    sides = [(series_tries, lambda: _held_ids(s_first, case_ids)), (base_tries, lambda: _held_ids(b_first, case_ids))]
    for _ in range(confirm.MAX_TRIES):   # rounds: each adds at least one try a side
        if not case_ids:
            break
        held = [(run, ids()) for run, ids in sides]
        if not any(ids for _, ids in held):
            break
        for run, ids in held:
            if ids:
                run(ids)
        sides.reverse()
        out = judged()
        case_ids = out.unsettled if len(s_runs) - 1 < confirm.MAX_TRIES else []
        if case_ids:
            count = min(confirm.ROUND, confirm.MAX_TRIES - (len(s_runs) - 1))
            progress.say(f"confirm: {', '.join(case_ids[:6])}" + (" ..." if len(case_ids) > 6 else "")
                         + f" still unsettled after {len(s_runs) - 1} tries a side; {count} more")
    if out is None:   # no side holds a case to try again
        out = judged()
    for line in confirm.likely_lines(out):
        progress.say(f"  likely regression: {line}")
    for line in confirm.flaky_lines(out):
        progress.say(f"  flaky: {line}")
    return out


def run_series(opts: TestOptions, sopts: SeriesOptions,
               progress: Progress) -> tuple[int, RunRecord, pathlib.Path | None]:
    """Exit code, the series run's record, and the comparison's dir (None without a base)."""
    tree = source_tree(opts, progress)
    ser, base_commit = series_mod.load_for_tree(sopts.spec, tree, sopts.base)
    progress.say(f"series: {ser.title}: {len(ser.patches)} patch(es) onto {base_commit[:12]}"
                 + (" (the base it names)" if ser.named_base and base_commit.startswith(ser.named_base)
                    and not sopts.base else ""))
    if ser.prerequisites:
        progress.say(f"series: it names {len(ser.prerequisites)} prerequisite patch(es) its base needs "
                     f"(prerequisite-patch-id: {', '.join(p[:12] for p in ser.prerequisites)}); they are "
                     "not applied here")
    want_base = sopts.compare or sopts.bisect
    # The base is built from the tree as it is when that is the base (its build dir is
    # likely warm), else from the worktree checked out at the base.
    base_in_tree = tree.git_commit == base_commit and "+dirty" not in tree.tree_id
    with series_mod.worktree_lock(tree, opts.cache_root, opts.arch, progress.say):
        base = None
        if want_base:
            base_tree_id = series_mod.tree_id_of(tree.path, base_commit)
            base = _cached_base(opts, base_tree_id)
            if base:
                progress.say(f"base: reusing the results of {base[1]} (same base, config, suites)")
            else:
                if base_in_tree:
                    base_tree = tree
                else:
                    wt = series_mod.prepare_worktree(tree, opts.cache_root, opts.arch, base_commit, progress.say)
                    base_tree = series_mod.worktree_tree(wt, f"{tree.origin} at {base_commit[:12]}")
                _, b_run = run_test(opts, progress, RunContext(
                    tree=base_tree, label="base", warning_files=tuple(ser.touched_files())))
                b_dir = opts.results_root / b_run.run_id
                if b_run.state != "complete":
                    raise OrchestratorError(
                        f"The base run did not complete ({b_run.verdict}); nothing to compare "
                        f"the series with. See {b_dir}.", ExitCode(b_run.exit_code or 7))
                base = (b_run, b_dir)

        applied = series_mod.apply(tree, ser, base_commit, opts.cache_root, opts.arch, progress.say)
        progress.say(f"series: applied in {applied.worktree}, tip {applied.tip_commit[:12]}")
        checks = series_checks.checkpatch(applied, progress.say)
        step_dirs: list[pathlib.Path] = []
        each = _each_patch(opts, progress, applied, sopts.each_patch, step_dirs) if sopts.each_patch else None
        info = applied.info(each_patch=each, checkpatch=checks)
        s_tree = series_mod.worktree_tree(applied.worktree, f"{tree.origin} + series")
        try:
            s_code, s_run = run_test(opts, progress, RunContext(
                tree=s_tree, label="series", series=info, warning_files=tuple(ser.touched_files())))
        except OrchestratorError as exc:
            # Against a base that built and booted, a series whose kernel does neither is the
            # comparison's finding, with its reply: the run's own exit code stays (5, 6).
            if base is None or exc.results is None or exc.code not in (ExitCode.BUILD_FAILED,
                                                                        ExitCode.BOOT_FAILED):
                raise
            progress.say(f"orchestrator: {exc.message}")
            s_code, s_run = int(exc.code), exc.results
        s_dir = opts.results_root / s_run.run_id
        if base is None:
            return s_code, s_run, None

        b_run, b_dir = base
        bis, out_dir = None, None
        if s_run.state != "complete":
            diff = compare.series_failed(s_run, attribute.attribute(
                s_run.splats, applied.worktree, applied.base_commit, applied.tip_commit,
                [p.record() for p in applied.series.patches]))
        else:
            _fill_base_warnings(opts, b_run, b_dir, ser.touched_files())
            diff = compare.compare(b_run, s_run, b_dir, s_dir)
            attribute.warnings(diff.warnings_added, applied.worktree, applied.base_commit, applied.tip_commit,
                               [p.record() for p in applied.series.patches])
            diff = _confirmed(opts, progress, opts.retries, diff, (b_run, tree if base_in_tree else None),
                              (s_run, s_tree), applied, step_dirs)
            if sopts.bisect and _targets(diff):
                # What is known now is kept now: an interrupted or failed bisect (it may
                # run for an hour) must not cost the confirmed comparison.
                out_dir = _publish(opts, progress, out_dir, (b_run, b_dir), (s_run, s_dir), step_dirs,
                                   Comparison(schema_version=1, arch=s_run.arch, base_run=b_run.run_id,
                                              series_run=s_run.run_id, series=info, diff=diff, each_patch=each))
                progress.say(f"compare: {out_dir} (the comparison so far; the bisect adds to it)")
                bis = _bisect(opts, progress, applied, diff, step_dirs, opts.retries)

    comparison = Comparison(schema_version=1, arch=s_run.arch, base_run=b_run.run_id, series_run=s_run.run_id,
                            series=info, diff=diff, bisect=bis, each_patch=each)
    out_dir = _publish(opts, progress, out_dir, (b_run, b_dir), (s_run, s_dir), step_dirs, comparison)
    text = compare.mail_summary(diff, b_run, s_run, bis, each)
    print(f"\n{text}\n  compare: {out_dir}")
    if diff.series_failed:
        return s_code, s_run, out_dir
    return int(ExitCode.TEST_FAILURES if diff.regressed or (each and each.first_failing)
               else ExitCode.OK), s_run, out_dir
