"""A difference is judged before it is called one, and nothing that hurts is waved off.

compare() sorts each case by its first result on both sides. Every case whose result
differs (and the case during which a one-sided splat was seen) is run again on both sides
in fresh guests (`--retries N`), and judged here by what a maintainer acts on:

- **failing vs not failing** (or running vs skipped), never the exact status: FAIL on
  one try and ERROR (a hang) on the next is the same failure;
- **confirmed**: every series run shows it and no base run does;
- **likely regression**: the runs are mixed, and the series shows it significantly more
  often than the base: a one-sided Fisher exact test on the tries (the first runs picked
  the case, so they are left out of the test) plus the base kernel's earlier runs with
  the same inputs (its history), p < ALPHA. While neither that nor its opposite is
  settled, versus_base adds tries, up to MAX_TRIES per side;
- **flaky**: mixed, at rates the test cannot tell apart: not a difference;
- a **splat** in lines the series changed is the series' whatever its rate (versus_base
  finds the lines); one never seen on the base kernel (its runs and its history) counts
  against the series unless the known-causes table names it as the emulator's noise;
  one the base shows too is judged like a case.

This module is the pure part: runs in (each side's first run, then its tries), the judged
comparison out.
"""
from __future__ import annotations

import dataclasses
import math
from collections import Counter
from typing import Callable, Iterable

from msgspec.structs import replace

from ..model import (Attribution, Cause, Diff, Flaky, HistoryLine, KnownCause, Likely, RunRecord, SideCounts,
                     Seen, Splat, SplatChange, TestInfo)
from ..suites.case_id import test_of
from ..suites.splats import splat_key
from ..suites.status import FAILING, SKIPPED, STATUSES

# causes.known_splat: (a splat's title, arch, kernel version) -> the known cause, or None.
KnownNoise = Callable[[str, str, str], Cause | None]

# Tries after the first run, per side, before any adaptivity. A case failing one run in
# eight at random shows on all three series runs and none of the three base runs with a
# chance of (1/8)^3 * (7/8)^3 = 0.13%; one more try costs every confirmed case another boot.
DEFAULT_RETRIES = 2
# The test and its level. One-sided: only "the series shows it more often" is a finding.
TEST = "Fisher's exact test, one-sided, on the tries (first runs left out) and the base's history"
ALPHA = 0.05
# Tries per side at most for a case whose runs are mixed. With 10 tries a side, a series
# that makes a case fail half the time against a clean base is found with probability
# 0.83 (0.99 at 70%, 0.35 at 30%): it needs 4 failing tries of 10 (p = 0.043); a case
# failing at the same rate on both sides is called a likely regression at most 2.1% of
# the times it is tried (rate 0.5; 0.45% at 0.1). 6 tries would find the 50% case with
# probability 0.34, 8 with 0.64. Computed exactly in tests/test_confirm.py.
MAX_TRIES = 10
# Tries added per round while a case is unsettled: a base that is not the tree's own
# checkout is rebuilt when the worktree goes back to it, so rounds are not of one.
ROUND = 2

# The lists of cases whose status differs between the first runs, and what the series'
# side shows in each ("regression": it counts against the series when confirmed or likely).
@dataclasses.dataclass(frozen=True)
class _Change:
    shows: Callable[[str | None], bool]   # the series' side of the change, on one status
    regression: bool


CHANGES: dict[str, _Change] = {
    "new_failures": _Change(lambda s: s in FAILING, True),
    "coverage_lost": _Change(lambda s: s is None or s in SKIPPED, True),
    "fixed": _Change(lambda s: s is not None and s not in FAILING, False),
    "newly_supported": _Change(lambda s: s is not None and s not in SKIPPED, False),
}
CHANGE_LISTS = (*CHANGES, "other_changes")
# What makes a comparison "regressed" (exit 1, no Tested-by): each list, when not empty.
REGRESSION_LISTS = ("series_failed", "new_failures", "likely_regressions", "coverage_lost",
                    "new_cases_failing", "new_splats", "warnings_added")


def fisher_greater(k1: int, n1: int, k2: int, n2: int) -> float:
    """One-sided Fisher exact test: the chance that side 1 shows k1 or more of the k1 + k2
    events among n1 + n2 runs if both sides had the same rate (hypergeometric tail)."""
    total, events = n1 + n2, k1 + k2
    if n1 == 0 or n2 == 0:
        return 1.0
    tail = sum(math.comb(events, x) * math.comb(total - events, n1 - x)
               for x in range(k1, min(events, n1) + 1))
    return tail / math.comb(total, n1)


@dataclasses.dataclass(frozen=True)
class Tally:
    """How many of a side's runs show something: the first run, then the tries, then
    (base only) the kernel's earlier runs."""
    first: bool | None
    tries: tuple[bool, ...]
    history: tuple[bool, ...] = ()

    @property
    def now(self) -> list[bool]:
        return ([self.first] if self.first is not None else []) + list(self.tries)

    def __str__(self) -> str:
        return f"{sum(self.now)}/{len(self.now)}"


@dataclasses.dataclass(frozen=True)
class Judgement:
    kind: str              # confirmed | likely | mixed | opposite
    p: float | None        # the test's p-value, when it was made
    unsettled: bool        # mixed, and more tries could still settle it

    @property
    def p_shown(self) -> float | None:
        return None if self.p is None else round(self.p, 4)


def judge(series: Tally, base: Tally, max_tries: int = MAX_TRIES) -> Judgement:
    """Whether the series shows something the base does not: on every run and never on
    the base, now or in its history (confirmed), significantly more often (likely), or
    neither."""
    s_now, b_now = series.now, base.now
    if s_now and all(s_now) and not any(b_now) and not any(base.history):
        return Judgement("confirmed", None, False)
    b_obs = list(base.tries) + list(base.history)
    k_s, n_s, k_b, n_b = sum(series.tries), len(series.tries), sum(b_obs), len(b_obs)
    if n_s == 0 or n_b == 0:
        # No tries (--retries 0, or a side that could not run them): nothing to test.
        return Judgement("mixed" if any(s_now) else "opposite", None, False)
    p = fisher_greater(k_s, n_s, k_b, n_b)
    if p < ALPHA:
        return Judgement("likely", p, False)
    left = max(0, max_tries - len(series.tries))
    # Could `left` more tries a side still make it significant (all showing on the
    # series, none on the base), or show the series does not show it at all?
    best = fisher_greater(k_s + left, n_s + left, k_b, n_b + left)
    return Judgement("mixed" if any(s_now) else "opposite", p, left > 0 and best < ALPHA)


# -- reading runs ------------------------------------------------------------------------
def _did_not_boot(run: RunRecord) -> bool:
    """A run whose guest never reached its shell: none of its cases could pass."""
    boot = run.stages.boot
    return not run.cases and boot is not None and boot.state == "failed"


def status_in(run: RunRecord, case_id: str) -> str | None:
    """The case's status in a run; ERROR when the run's kernel did not boot; None when
    the run did not hold the case."""
    for c in run.cases:
        if c.id == case_id:
            return c.status
    return "ERROR" if _did_not_boot(run) else None


def _held(run: RunRecord, case_id: str | None) -> bool:
    """Whether a run could have shown a splat of this case (None: of boot or idle)."""
    if _did_not_boot(run):
        return False
    return case_id is None or any(c.id == case_id for c in run.cases)


def _case_tally(runs: list[RunRecord], case_id: str, shows: Callable[[str | None], bool],
                history: Iterable[HistoryLine] = (), absent_counts: bool = False) -> Tally:
    """absent_counts: a run without the case is an observation (a case the series
    removed), not a run that did not try it."""
    def obs(statuses: Iterable[str | None]) -> list[bool]:
        return [shows(s) for s in statuses if s is not None or absent_counts]
    first = obs([status_in(runs[0], case_id)]) if runs else []
    return Tally(first[0] if first else None, tuple(obs(status_in(r, case_id) for r in runs[1:])),
                 tuple(obs(h.statuses.get(case_id) for h in history)))


def _splat_keys(run: RunRecord) -> set[str]:
    return {splat_key(s) for s in run.splats}


def _splat_tally(runs: list[RunRecord], key: str, case_id: str | None,
                 history: Iterable[HistoryLine] = ()) -> Tally:
    seen = [key in _splat_keys(r) for r in runs if _held(r, case_id)]
    first = seen[0] if runs and _held(runs[0], case_id) else None
    tries = seen[1:] if first is not None else seen
    hist = [key in h.splats for h in history if h.splats is not None
            and (case_id is None or case_id in h.statuses)]
    return Tally(first, tuple(tries), tuple(hist))


def _statuses(runs: list[RunRecord], case_id: str) -> list[str]:
    return [s for s in (status_in(r, case_id) for r in runs) if s is not None]


def _splats_during(runs: list[RunRecord], case_id: str) -> list[str]:
    titles = [s.title for run in runs for s in run.splats if s.case == case_id]
    return list(dict.fromkeys(titles))


def targets(diff: Diff) -> list[str]:
    """The case files to run again: every case whose status differs, every failing case
    only the series has, and every case during which a one-sided splat was seen (a
    splat of boot/idle has no case)."""
    ids = [e.id for name in CHANGE_LISTS for e in getattr(diff, name)]
    ids += [e.id for e in diff.new_cases_failing]
    ids += [s.case for s in diff.new_splats + diff.gone_splats if s.case]
    return sorted({test_of(i) for i in ids})


def _worst(statuses: list[str]) -> str:
    """The status a flaky entry is counted by: the first failing one, else the first
    that is not PASS, in the vocabulary's order."""
    seen = set(statuses)
    for status in (*[s for s in STATUSES if s in FAILING], *STATUSES):
        if status in seen and status != "PASS":
            return status
    return "PASS"


def _count(statuses: list[str], status: str) -> str:
    return f"{statuses.count(status)}/{len(statuses)}"


# -- the judgement -----------------------------------------------------------------------
def confirm(diff: Diff, base_runs: list[RunRecord], series_runs: list[RunRecord],
            base_history: list[HistoryLine] = (), attributed: dict[str, Attribution] | None = None,
            known_noise: KnownNoise | None = None,
            max_tries: int = MAX_TRIES) -> Diff:
    """compare()'s diff of the first runs, judged over every run of both sides.

    base_runs, series_runs: each side's first run, then its tries (a side may have only
    its first run, e.g. an earlier run given as --baseline); base_history: the base
    kernel's earlier runs with the same inputs (history.py lines, without the runs
    given here); attributed: splat key -> where the series changed a line of its
    location or stack (versus_base); known_noise(title, arch, version): the known cause
    of a splat that is the emulator's, or None (causes.known_splat).

    Out: the diff with confirmed entries kept (with their tallies), mixed ones moved to
    likely_regressions (significant) or flaky, new_splats judged over every series run,
    `unsettled`: the case files more tries could still settle, and `regressed`."""
    attributed = attributed or {}
    out = replace(diff, flaky=[], flaky_splats=[], likely_regressions=[], unsettled=[],
                  tries=SideCounts(base=len(base_runs), series=len(series_runs)),
                  test=TestInfo(name=TEST, alpha=ALPHA, max_tries=max_tries))
    unsettled: set[str] = set()
    for name in CHANGE_LISTS:
        kept = []
        for entry in getattr(diff, name):
            cid = entry.id
            change = CHANGES.get(name) or _Change(lambda s, want=entry.series: s == want, False)
            s_tally = _case_tally(series_runs, cid, change.shows, absent_counts=entry.series is None)
            history = base_history if change.regression else ()
            b_tally = _case_tally(base_runs, cid, change.shows, history)
            verdict = judge(s_tally, b_tally, max_tries)
            seen = _shown(s_tally, b_tally)
            b, s = _statuses(base_runs, cid), _statuses(series_runs, cid)
            if verdict.kind == "confirmed":
                kept.append(replace(entry, tries=SideCounts(base=len(b_tally.now), series=len(s_tally.now)),
                                    seen=seen, base_statuses=b, series_statuses=s))
                continue
            if verdict.unsettled and change.regression:
                # Only what could count against the series is worth more boots: a case
                # that may or may not be fixed changes no verdict.
                unsettled.add(test_of(cid))
            if verdict.kind == "likely" and change.regression:
                out.likely_regressions.append(Likely(
                    id=cid, was=name, series=seen.series, base=seen.base, base_history=seen.base_history,
                    p=verdict.p_shown, reason=entry.reason, test_status=entry.test_status,
                    base_statuses=b, series_statuses=s, splats=_splats_during(base_runs + series_runs, cid)))
                continue
            if verdict.kind == "likely":
                kept.append(replace(entry, seen=seen, p=verdict.p_shown))
                continue
            status = _worst(b + s)
            out.flaky.append(Flaky(
                id=cid, status=status, was=name, base=_count(b, status), series=_count(s, status),
                base_statuses=b, series_statuses=s, reason=entry.reason, p=verdict.p_shown,
                base_history=seen.base_history, splats=_splats_during(base_runs + series_runs, cid)))
        setattr(out, name, kept)
    # A failing case only the series has is the series' own, flaky or not: kept with its
    # tally (a case that fails on some tries is a selftest that needs work before merging).
    out.new_cases_failing = [
        replace(entry, seen=str(_case_tally(series_runs, entry.id, CHANGES["new_failures"].shows)))
        for entry in diff.new_cases_failing]
    _judge_splats(out, diff, base_runs, series_runs, base_history, attributed, known_noise,
                  max_tries, unsettled)
    out.unsettled = sorted(unsettled)
    out.regressed = regressed(out)
    return out


def _shown(series: Tally, base: Tally) -> Seen:
    """k/n of each side and, when the base's history was counted, its own."""
    return Seen(series=str(series), base=str(base),
                base_history=f"{sum(base.history)}/{len(base.history)}" if base.history else None)


def _judge_splats(out: Diff, diff: Diff, base_runs: list[RunRecord], series_runs: list[RunRecord],
                  base_history: list[HistoryLine], attributed: dict[str, Attribution],
                  known_noise: KnownNoise | None,
                  max_tries: int, unsettled: set[str]) -> None:
    """new_splats: every splat of any series run that the base's first run did not show,
    judged over all runs; gone_splats: as before, kept only when every run agrees."""
    base_first = _splat_keys(base_runs[0]) if base_runs else set()
    candidates: dict[str, tuple[Splat, RunRecord]] = {}   # key -> (the splat, the series run it was first seen in)
    during: dict[str, Counter[str | None]] = {}          # key -> the cases it was seen during, over the runs
    for run in series_runs:
        for s in run.splats:
            key = splat_key(s)
            if key in base_first:
                continue
            candidates.setdefault(key, (s, run))
            during.setdefault(key, Counter())[s.case] += 1
    confirmed_failing = {entry.id for entry in out.new_failures}
    new = []
    for key, first_seen in candidates.items():
        # A WARN_ONCE lands on whichever case first reaches it in each boot, and the order
        # differs between guests and runs: name the case it was seen during most often,
        # not the one the first run happened to give it. On a tie (tries boot each guest
        # afresh, so every retried case that reaches it gets it once per try), a case the
        # series confirmed broken, where the report's reader looks first; then the first seen.
        counts = during[key]
        most = max(counts.values())
        tied = [c for c, n in counts.items() if n == most]
        case = next((c for c in tied if c in confirmed_failing), tied[0])
        splat, run = next(((s, r) for r in series_runs for s in r.splats
                           if splat_key(s) == key and s.case == case), first_seen)
        s_tally = _splat_tally(series_runs, key, splat.case)
        b_tally = _splat_tally(base_runs, key, splat.case, base_history)
        seen = _shown(s_tally, b_tally)
        entry = SplatChange(kind=splat.kind, title=splat.title, case=splat.case, location=splat.location,
                            frames=splat.frames or None, seen=seen)
        if key in attributed:
            new.append(replace(entry, why="in lines the series changed", attributed=attributed[key]))
            continue
        verdict = judge(s_tally, b_tally, max_tries)
        on_base = any(b_tally.now) or any(b_tally.history)
        if verdict.kind == "confirmed" and not on_base:
            new.append(replace(entry, why="on every series run, on no base run"))
            continue
        if verdict.kind == "likely":
            out.likely_regressions.append(Likely(
                id=f"splat {splat.title}", was="new_splats", series=seen.series, base=seen.base,
                base_history=seen.base_history, p=verdict.p_shown, kind=splat.kind, title=splat.title,
                case=splat.case, location=splat.location, frames=splat.frames or None, seen=seen))
            continue
        if verdict.unsettled and splat.case:
            unsettled.add(test_of(splat.case))
        cause = None if on_base else _noise(splat, run, known_noise)
        if on_base or cause is not None:
            out.flaky_splats.append(replace(entry, was="new_splats", series=seen.series, base=seen.base,
                                            base_history=seen.base_history, known_cause=cause))
            continue
        new.append(replace(entry, why="never seen on the base kernel (its runs and its history)"))
    out.new_splats = new

    kept = []
    for splat in diff.gone_splats:
        key = splat_key(splat)
        b_tally = _splat_tally(base_runs, key, splat.case)
        s_tally = _splat_tally(series_runs, key, splat.case)
        if all(b_tally.now) and not any(s_tally.now):
            kept.append(splat)
        else:
            out.flaky_splats.append(replace(splat, was="gone_splats", base=str(b_tally), series=str(s_tally)))
    out.gone_splats = kept


def _noise(splat: Splat, run: RunRecord, known_noise: KnownNoise | None) -> KnownCause | None:
    """The known cause of a splat, or of the splat it follows in the same case of the same
    run (a panic after a known Oops is that Oops' end, not news of its own)."""
    if known_noise is None:
        return None

    def cause_of(s: Splat) -> Cause | None:
        return known_noise(s.title, run.arch, run.kernel.version)
    cause = cause_of(splat)
    if cause is not None:
        return KnownCause(kind=cause.kind, why=cause.why)
    for earlier in run.splats:
        if earlier is splat or splat_key(earlier) == splat_key(splat):
            break
        if earlier.case == splat.case:
            follows = cause_of(earlier)
            if follows is not None:
                return KnownCause(kind=follows.kind, why=follows.why, follows=earlier.title)
    return None


def regressed(diff: Diff) -> bool:
    return any(getattr(diff, name) for name in REGRESSION_LISTS)


def regression_kinds(diff: Diff) -> list[str]:
    """What made a comparison regressed, in words: `new failures, coverage lost`."""
    failed = diff.series_failed
    return [f"its kernel does not {failed.stage}" if name == "series_failed" and failed else name.replace("_", " ")
            for name in REGRESSION_LISTS if getattr(diff, name)]


def flaky_lines(diff: Diff) -> list[str]:
    """One line per flaky case and splat: `tcscripts/x.tc: ERROR 1/3 on series, 0/3 on
    base (Oops: int3 ...)`."""
    lines = []
    for e in diff.flaky:
        why = "; ".join(e.splats) or e.reason
        lines.append(f"{e.id}: {e.status} {e.series} on series, {e.base} on base"
                     + (f" ({why[:100]})" if why else "")
                     + (f"; p = {e.p:.2f}" if e.p is not None else ""))
    for s in diff.flaky_splats:
        known = s.known_cause
        lines.append(f"splat {s.title[:100]}: seen {s.series} on series, {s.base} on base"
                     + (f" (during {s.case})" if s.case else "")
                     + (f"; known: {known.kind}: {known.why[:80]}" if known else ""))
    return lines


def likely_lines(diff: Diff) -> list[str]:
    """`kprobe/x.tc: fails 5/8 with the series, 0/8 on the base (p = 0.013)`."""
    out = []
    for e in diff.likely_regressions:
        what = {"new_failures": "fails", "coverage_lost": "skipped", "new_splats": "seen"}.get(e.was, "differs")
        hist = f" + {e.base_history} earlier base runs" if e.base_history else ""
        out.append(f"{e.id}: {what} {e.series} with the series, {e.base} on the base{hist} "
                   f"(p = {e.p:.3f})")
    return out
