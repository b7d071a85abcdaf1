"""A difference is confirmed before it is called one.

A case whose status differs between two runs, and a kernel splat seen on one side only,
is run again on both sides in fresh guests (`--retries N`). A difference that every try
repeats stays what compare() called it (a new failure, fixed, newly supported...); one
that comes and goes on either side is *flaky*: its own section, with its counts, never a
new failure, and never what makes a run "regressed". Kernels under TCG are noisy: on
6.12 x86_64 an int3 Oops strikes about one run in eight of a case that passes otherwise.

This module is the pure part: run data in (results.json documents: the first run of a
side, then its tries), the confirmed comparison out.
"""
from __future__ import annotations

from ..suites.case_id import test_of
from ..suites.splats import splat_key
from ..suites.status import FAILING, STATUSES

# Tries after the first run, per side. A case failing one run in eight at random shows
# on all three series runs and none of the three base runs with a chance of
# (1/8)^3 * (7/8)^3 = 0.13%; one more try costs every confirmed case another boot.
DEFAULT_RETRIES = 2
# The comparison's lists of cases whose status differs, which confirmation may empty.
CHANGE_LISTS = ("new_failures", "fixed", "newly_supported", "newly_unsupported", "other_changes")


def targets(diff: dict) -> list[str]:
    """The case files to run again: every case whose status differs, and every case
    during which a one-sided splat was seen (a splat of boot/idle has no case)."""
    ids = [e["id"] for name in CHANGE_LISTS for e in diff.get(name, [])]
    ids += [s["case"] for name in ("new_splats", "gone_splats") for s in diff.get(name, []) if s.get("case")]
    return sorted({test_of(i) for i in ids})


def _statuses(runs: list[dict], case_id: str) -> list[str]:
    return [c["status"] for run in runs for c in run.get("cases", []) if c["id"] == case_id]


def _splat_keys(run: dict) -> set[str]:
    return {splat_key(s) for s in run.get("splats", [])}


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


def _splats_during(runs: list[dict], case_id: str) -> list[str]:
    titles = [s["title"] for run in runs for s in run.get("splats", []) if s.get("case") == case_id]
    return list(dict.fromkeys(titles))


def confirm(diff: dict, base_runs: list[dict], series_runs: list[dict]) -> dict:
    """compare()'s diff with each difference either confirmed by every try on both sides
    (kept, with its tries) or moved to "flaky" / "flaky_splats" with its counts.
    base_runs, series_runs: each side's first run, then its tries (a side may have only
    its first run, e.g. an earlier run given as --baseline)."""
    out = {**diff, "flaky": [], "flaky_splats": [],
           "tries": {"base": len(base_runs), "series": len(series_runs)}}
    for name in CHANGE_LISTS:
        kept = []
        for entry in diff.get(name, []):
            b, s = _statuses(base_runs, entry["id"]), _statuses(series_runs, entry["id"])
            if len(set(b)) == 1 and len(set(s)) == 1 and b[0] != s[0]:
                kept.append({**entry, "tries": {"base": len(b), "series": len(s)}})
                continue
            status = _worst(b + s)
            out["flaky"].append({
                "id": entry["id"], "status": status, "was": name,
                "base": _count(b, status), "series": _count(s, status),
                "base_statuses": b, "series_statuses": s, "reason": entry.get("reason", ""),
                "splats": _splats_during(base_runs + series_runs, entry["id"])})
        out[name] = kept
    for name, shown_on, absent_on in (("new_splats", series_runs, base_runs),
                                      ("gone_splats", base_runs, series_runs)):
        kept = []
        for splat in diff.get(name, []):
            key = splat_key(splat)
            shown = [key in _splat_keys(r) for r in shown_on]
            absent = [key not in _splat_keys(r) for r in absent_on]
            if all(shown) and all(absent):
                kept.append(splat)
                continue
            base_seen = [key in _splat_keys(r) for r in base_runs]
            series_seen = [key in _splat_keys(r) for r in series_runs]
            out["flaky_splats"].append({
                **splat, "was": name,
                "base": f"{sum(base_seen)}/{len(base_seen)}", "series": f"{sum(series_seen)}/{len(series_seen)}"})
        out[name] = kept
    out["regressed"] = bool(out["new_failures"] or out["new_splats"] or diff.get("warnings_added"))
    return out


def flaky_lines(diff: dict) -> list[str]:
    """One line per flaky case and splat: `tcscripts/x.tc: ERROR 1/3 on series, 0/3 on
    base (Oops: int3 ...)`."""
    lines = []
    for e in diff.get("flaky", []):
        why = "; ".join(e.get("splats") or []) or e.get("reason", "")
        lines.append(f"{e['id']}: {e['status']} {e['series']} on series, {e['base']} on base"
                     + (f" ({why[:100]})" if why else ""))
    for s in diff.get("flaky_splats", []):
        lines.append(f"splat {s['title'][:100]}: seen {s['series']} on series, {s['base']} on base"
                     + (f" (during {s['case']})" if s.get("case") else ""))
    return lines
