"""What a series changed against its base: two results.json documents in, the
differences out (cases, splats, config, compiler warnings), as data and as text short
enough for a reply on the mailing list."""
from __future__ import annotations

import pathlib
import textwrap

from ..kernel import buildwarn, kconfig
from ..progress import printable
from ..model import (AddedWarning, Attribution, Bisect, CaseChange, ConfigDelta, Diff, EachPatch, RunRecord,
                     SeriesFailed, Splat, SplatChange, bare_subject)
from ..suites.status import FAILING, PASSED, SKIPPED, counts_line
from ..suites.splats import decoded_lines, grouped, splat_key
from .summary import checkpatch_lines
from . import confirm

# A compiler's or a boot's error line, whole: cut (at a word) only past this.
ERROR_WIDTH = 300

# The lists of cases compare() sorts each case into (confirm.py judges them further).
CASE_LISTS = ("new_failures", "fixed", "coverage_lost", "newly_supported", "other_changes",
              "new_cases_failing", "only_in_series", "only_in_base")


def change_list(base_status: str, series_status: str) -> str:
    """Which list a case whose status differs goes to. Failing vs not failing decides
    first: FAIL on one try and ERROR (a hang) on the next are the same news."""
    if series_status in FAILING and base_status not in FAILING:
        return "new_failures"
    if base_status in FAILING and series_status in PASSED:
        return "fixed"
    if series_status in SKIPPED and base_status not in SKIPPED:
        return "coverage_lost"
    if base_status in SKIPPED and series_status not in SKIPPED:
        return "newly_supported"
    return "other_changes"


def _config(run_dir: pathlib.Path | None) -> dict[str, str]:
    if run_dir is None or not (run_dir / "config").exists():
        return {}
    return kconfig.read_dotconfig(run_dir / "config")


def _splat_change(s: Splat, attributed: Attribution | None = None, where: bool = False) -> SplatChange:
    """where: with its location and decoded frames (what a reader acts on)."""
    return SplatChange(kind=s.kind, title=s.title, case=s.case, attributed=attributed,
                       location=s.location if where else None, frames=(s.frames or None) if where else None)


def compare(base: RunRecord, series: RunRecord, base_dir: pathlib.Path | None = None,
            series_dir: pathlib.Path | None = None) -> Diff:
    """Each case's first result on both sides, classed by what a maintainer acts on:
    failing vs not failing first (FAIL -> ERROR is no news, PASS -> any failing status
    is), then running its check vs skipped (coverage lost, newly supported). A case only
    the series has counts against it when it fails; one only the base has, when it ran."""
    b_cases = {c.id: c for c in base.cases}
    s_ids = {c.id for c in series.cases}
    out = Diff()
    for s in series.cases:
        b = b_cases.get(s.id)
        if b is None:
            entry = CaseChange(id=s.id, series=s.status, reason=s.reason)
            (out.new_cases_failing if s.status in FAILING else out.only_in_series).append(entry)
            continue
        if b.status == s.status:
            continue
        # test_status: what the test itself said; the status is the orchestrator's, for a splat.
        getattr(out, change_list(b.status, s.status)).append(CaseChange(
            id=s.id, base=b.status, series=s.status, reason=s.reason, test_status=s.test_status))
    for b in base.cases:
        if b.id not in s_ids:
            if b.status in SKIPPED:
                out.only_in_base.append(CaseChange(id=b.id, base=b.status))
            else:   # the series removed (or renamed) a case that ran: its check is gone
                out.coverage_lost.append(CaseChange(id=b.id, base=b.status,
                                                    reason="the case is not in the series' tree"))

    b_splats = {splat_key(s) for s in base.splats}
    s_splats = {splat_key(s) for s in series.splats}
    # Once per report, however many guests printed it (confirm.py judges it over every run).
    out.new_splats = [_splat_change(s) for s, _, _ in grouped(series.splats) if splat_key(s) not in b_splats]
    out.gone_splats = [_splat_change(s) for s, _, _ in grouped(base.splats) if splat_key(s) not in s_splats]

    b_conf, s_conf = _config(base_dir), _config(series_dir)
    out.config = ConfigDelta(
        gained=sorted(f"{k}={v}" for k, v in s_conf.items() if k not in b_conf),
        lost=sorted(f"{k}={v}" for k, v in b_conf.items() if k not in s_conf),
        changed=sorted(f"{k}={b_conf[k]}->{v}" for k, v in s_conf.items() if k in b_conf and b_conf[k] != v))

    same_level = base.build_warnings_level == series.build_warnings_level
    for path, entries in series.build_warnings.items():
        if path not in base.build_warnings or not same_level:
            out.warnings_unchecked.append(path)   # the base was not compiled (so) for it: no claim either way
            continue
        old = {buildwarn.message_key(e) for e in base.build_warnings[path]}
        for e in entries:
            line, _, message = e.partition(": ")
            if buildwarn.message_key(e) not in old and line.isdigit() and int(line) > 0:
                out.warnings_added.append(AddedWarning(file=path, line=int(line), message=message))
    out.regressed = confirm.regressed(out)
    return out


def series_failed(series: RunRecord, attributed: dict[str, Attribution]) -> Diff:
    """The comparison when the series' kernel did not build or boot (its run failed) and
    the base's did: that is the finding, with the splats the guest printed before it died
    (attributed: splat key -> the patch whose line it names, series/attribute.py)."""
    stages = series.stages
    stage = "build" if stages.build is not None and stages.build.state == "failed" else "boot"
    # The stage's own words (the compiler's first error, how the guest died), not the run's
    # verdict, whose advice (check console=) is for a tree that never booted.
    own = getattr(stages, stage)
    why = ((own.first_errors or [None])[0] or own.error if own is not None else None) \
        or series.verdict or f"the {stage} failed"
    out = Diff(series_failed=SeriesFailed(stage=stage, why=why, splats=[
        _splat_change(s, attributed.get(splat_key(s)), where=True) for s in series.splats]))
    out.regressed = confirm.regressed(out)
    return out


def warning_lines(added: list[AddedWarning], patches: int) -> list[str]:
    """`patch 2/3: kernel/x.c:12: unused variable 'v' [-Wunused-variable]`, in patch order;
    a warning in a line older than the series last."""
    order = sorted(added, key=lambda w: (w.patch or patches + 1, w.file, w.line))
    return [f"patch {w.patch}/{patches}: {w.text()}" if w.patch else f"in an older line: {w.text()}"
            for w in order]


def _statuses_note(entry: CaseChange) -> str:
    """` (FAIL, FAIL, ERROR)` when the failing statuses differ between the runs."""
    seen = entry.series_statuses
    return f" ({', '.join(seen)})" if len(set(seen)) > 1 else ""


def splat_line(s: SplatChange) -> str:
    where = f" (during {s.case})" if s.case else ""
    att = s.attributed
    if att:
        why = (f"in a line patch {att.patch}/{att.patches} changed: {att.file}:{att.line}"
               + (f" ({att.frame})" if att.frame else ""))
    else:
        why = s.why or ""
    counts = f"seen {s.seen.series} with the series, {s.seen.base} on the base" if s.seen else ""
    return f"{s.title}{where}" + (f": {'; '.join(x for x in (why, counts) if x)}" if why or counts else "")


def _patches(n: int) -> str:
    return f"{n} patch" if n == 1 else f"{n} patches"


def _reason(e: CaseChange) -> str:
    return f" ({e.reason[:100]})" if e.reason else ""


def mail_summary(diff: Diff, base: RunRecord, series: RunRecord, bisect: Bisect | None = None,
                 each_patch: EachPatch | None = None, checkpatch: bool = True) -> str:
    """Plain text for a reply: what ran, on what, and what differed. Facts only.
    checkpatch: include the patch checks (a reply covering several arches shows them once)."""
    info = series.series
    # A series kernel that never booted has no accelerator of its own: the base's ran.
    ran_on = series.accel or base.accel
    accel = ran_on.name.upper() if ran_on else "?"
    lines = [f"{series.arch} (QEMU {accel}), Linux {series.kernel.version}, "
             f"base {info.base_commit[:12] if info else '?'}, series: {info.title if info else '?'} "
             f"({_patches(len(info.patches) if info else 0)})",
             f"  suites: {', '.join(series.suites)}",
             f"  base:   {counts_line(base)}",
             f"  series: {counts_line(series)}"]

    def section(title: str, entries: list[str]) -> None:
        if entries:
            lines.append(f"  {title}:")
            lines.extend(f"    {e}" for e in entries)

    failed = diff.series_failed
    if failed:
        lines.append(f"  the series' kernel does not {failed.stage} (the base's does): "
                     + textwrap.shorten(failed.why, ERROR_WIDTH, placeholder=" ..."))
        for s in failed.splats:
            lines.append(f"    {splat_line(s)}")
            lines.extend(f"      {d}" for d in decoded_lines(s))
    tries = diff.tries
    judged = (diff.new_failures, diff.fixed, diff.coverage_lost, diff.newly_supported, diff.other_changes,
              diff.new_splats, diff.new_cases_failing, diff.likely_regressions)
    if tries and max(tries.series, tries.base) > 1 and any(judged):
        lines.append(f"  judged over {tries.series} series and {tries.base} base runs (fresh guests): "
                     "a confirmed difference is on every run of one side and none of the other")
    section("new failures (on every series run, no base run)",
            [f"{e.id}: {e.base} -> {e.series}" + _statuses_note(e) + _reason(e) for e in diff.new_failures])
    section(f"likely regressions (mixed runs; {confirm.TEST}, p < {confirm.ALPHA})",
            confirm.likely_lines(diff))
    section("new kernel splats", [line for s in diff.new_splats
                                  for line in [splat_line(s), *(f"  {d}" for d in decoded_lines(s))]])
    section("coverage lost (the case ran on the base, not with the series)",
            [f"{e.id}: {e.base} -> {e.series or 'absent'}" + _reason(e) for e in diff.coverage_lost])
    section("new cases failing (only in the series)",
            [f"{e.id}: {e.series}" + (f", failing {e.seen} runs" if isinstance(e.seen, str) else "")
             + _reason(e) for e in diff.new_cases_failing])
    section("flaky (mixed results the test cannot tell apart: not a difference)", confirm.flaky_lines(diff))
    section("fixed", [f"{e.id}: {e.base} -> {e.series}" for e in diff.fixed])
    section("newly supported", [f"{e.id}: {e.base} -> {e.series}" for e in diff.newly_supported])
    section("other status changes", [f"{e.id}: {e.base} -> {e.series}" for e in diff.other_changes])
    section("cases only in the series", [f"{e.id}: {e.series}" for e in diff.only_in_series])
    section("cases only in the base", [f"{e.id}: {e.base}" for e in diff.only_in_base])
    section("splats gone", [s.title for s in diff.gone_splats])
    section("config options gained", diff.config.gained)
    section("config options lost", diff.config.lost)
    section("config options changed", diff.config.changed)
    section(f"compiler warnings (W={buildwarn.LEVEL}) added in files the series touches, per patch",
            warning_lines(diff.warnings_added, len(info.patches) if info else 0))
    if checkpatch and info and info.checkpatch:
        section("checkpatch --strict, per patch", checkpatch_lines(info.checkpatch, len(info.patches)))
    if each_patch:
        f = each_patch.first_failing
        if f:
            lines.append(f"  builds per patch: patch {f.number} ({bare_subject(f.subject)}) does not build: "
                         + textwrap.shorten(f.error, ERROR_WIDTH, placeholder=" ..."))
        else:
            lines.append(f"  builds per patch: all {each_patch.built} commit(s) build")
        for t in each_patch.tested:
            lines.append(f"  patch {t.number}: {len(t.failing)} failing case(s), {t.splats} splat(s)"
                         + (f": {', '.join(t.failing[:6])}" if t.failing else ""))
    if bisect and (bisect.first_bad or bisect.unresolved):
        if bisect.patches == 1:
            lines.append("  bisected (one patch: the base and the series runs above place it):")
        else:
            per_step = bisect.tries_per_step
            lines.append(f"  bisected ({bisect.steps} step{'s' if bisect.steps != 1 else ''} over "
                         f"{_patches(bisect.patches)}"
                         + (f", {per_step} runs per step" if per_step > 1 else "") + "):")
        for name, p in bisect.first_bad.items():
            lines.append(f"    {name}: first bad patch {p.number}/{bisect.patches} {bare_subject(p.subject)}")
        for name, why in bisect.unresolved.items():
            lines.append(f"    {name}: {why}")
    if not differs(diff):
        lines.append("  no difference between base and series")
    return printable("\n".join(lines))


def differs(diff: Diff) -> bool:
    """Whether the comparison has anything to tell: a case, splat, config or warning change."""
    return any(getattr(diff, name) for name in (*CASE_LISTS, *confirm.REGRESSION_LISTS, "gone_splats")) \
        or any((diff.config.gained, diff.config.lost, diff.config.changed))
