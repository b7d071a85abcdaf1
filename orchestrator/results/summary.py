"""The terminal summary printed at the end of a run, from its record alone."""
from __future__ import annotations

import pathlib
import shlex

from ..model import PatchCheck, RunRecord
from ..progress import cut_at_word, fmt_duration, printable
from ..suites.splats import decoded_lines, grouped
from ..suites.status import FAILING, STATUSES
from . import causes, history

_NOT_SHOWN = {"PASS"}
_DROP_TAGS = {"unavailable": "not available in this tree", "undefined": "not defined in this tree",
              "dropped": "dropped"}


def checkpatch_lines(checks: list[PatchCheck], patches: int) -> list[str]:
    """scripts/checkpatch.pl --strict per patch: its total line, its findings under it,
    then the kernel-doc warnings it adds."""
    out = []
    for c in checks:
        out.append(f"patch {c.number}/{patches}: {c.summary}")
        out.extend(f"  {f[:150]}" for f in c.findings)
        out.extend(f"  kernel-doc: {w[:140]}" for w in c.kernel_doc)
    return out


# The slowest cases a summary names: where a run's time went, and a case that ran out
# its timeout.
SLOWEST_SHOWN = 5


def built_line(run: RunRecord) -> str | None:
    """`built with gcc (Debian 12.2.0-14) 12.2.0, config base + tracing + x86_64`: what
    made the kernel (the compiler's version line, the kconfig fragments by name)."""
    if not run.versions.compiler:
        return None
    config = " + ".join(pathlib.PurePath(f).stem for f in run.fragments)
    return f"built with {run.versions.compiler}" + (f", config {config}" if config else "")


def slowest_line(run: RunRecord) -> str | None:
    """`slowest: kprobe/multiple_kprobes.tc 5m00s, ...`: the run's slowest cases."""
    ran = sorted((c for c in run.cases if c.seconds > 0), key=lambda c: -c.seconds)[:SLOWEST_SHOWN]
    if not ran:
        return None
    return "slowest: " + ", ".join(f"{c.id} {fmt_duration(c.seconds)}" for c in ran)


def render(run: RunRecord, results_dir: str) -> str:
    counts = run.counts
    kernel = run.kernel
    out = []
    accel = run.accel.name.upper() if run.accel else "not booted"
    out.append(f"{run.arch}: Linux {kernel.version} ({kernel.origin}), {accel}, {run.state}")
    timing = ", ".join(f"{name} {fmt_duration(s.seconds)}" + (" (reused)" if s.reused else "")
                       for name, s in run.stages.started() if s.seconds is not None)
    if timing:
        out.append(f"  stages: {timing}")
    out.append("  " + "  ".join(f"{st} {counts[st]}" for st in STATUSES if counts.get(st))
               + f"  (total {sum(counts.values())})")
    if slowest := slowest_line(run):
        out.append(f"  {slowest}")
    width = max([len(c.id) for c in run.cases] + [10])
    for c in run.cases:
        if c.status in _NOT_SHOWN:
            continue
        out.append(f"  {c.status:<11} {c.id:<{width}}  {cut_at_word(c.reason, 100)}")
        cause = causes.of(c, run)
        if cause:
            out.append(f"  {'':<11} {'':<{width}}  known cause, {cut_at_word(causes.line(cause), 100)}")
        if c.status in FAILING and run.qemu_argv:
            out.append(f"  {'':<11} {'':<{width}}  reproduce: sh {results_dir}/reproduce.sh "
                       f"{shlex.quote(c.id.removesuffix(' (instance)'))}")
    left = causes.unexplained(run)
    if left:
        out.append(f"  not explained: {len(left)} case(s) that did not pass have no known cause "
                   f"(orchestrator/data/causes.yaml): {cut_at_word(', '.join(c.id for c in left), 160)}")
    if run.splats:
        out.append(f"  kernel splats: {len(run.splats)}")
        for s, times, cases in grouped(run.splats):
            out.append(f"    {s.kind}{f' x{times}' if times > 1 else ''} during {cut_at_word(', '.join(cases), 100)}: "
                       f"{cut_at_word(s.title, 110)}")
            out.extend(f"      {line[:150]}" for line in decoded_lines(s))
    known = [history.mark(c.id, c.status, run.history[c.id])
             for c in run.cases if c.status != "PASS" and c.id in run.history]
    if known:
        out.append("  seen with other results before (known noise?):")
        out.extend(f"    {line}" for line in known)
    first = run.first_cause
    if first and first.failing_after:
        n = len(first.failing_after)
        out.append(f"  look first at the {first.kind} during {first.case}: {n} failing case(s) ran "
                   f"after it and may follow from it ({cut_at_word(first.title, 80)})")
    if run.config and run.config.dropped:
        out.append(f"  config: {len(run.config.dropped)} asked option(s) not in the final .config")
        for d in run.config.dropped:
            out.append(f"    {d.option}={d.asked} -> {d.got}: {_DROP_TAGS.get(d.kind, d.kind)}: {cut_at_word(d.reason, 110)}")
    for note in run.config.notes if run.config else []:
        out.append(f"  config: {cut_at_word(note, 160)}")
    if run.series and run.series.checkpatch:
        out.append("  checkpatch --strict, per patch:")
        out.extend(f"    {line}" for line in checkpatch_lines(run.series.checkpatch, len(run.series.patches)))
    taint = run.taint
    if taint and taint.boot != taint.end:
        out.append(f"  taint: {taint.boot} at boot, {taint.end} at the end")
    out.append(f"  verdict: {run.verdict}   results: {results_dir}")
    return printable("\n".join(out))
