"""The kernel as a matrix axis: per arch, what the newer kernel changed against the older
one, with the comparison a series run uses (results/compare.py), folded into counts a
reader takes in at a glance: "arm64 6.12 -> 7.2: kprobe_multi 9 SKIP -> PASS"."""
from __future__ import annotations

from ..model import Diff, RunRecord
from ..results import compare
from ..suites.case_id import test_of

# The comparison's lists of cases whose status changed, in the order they are told.
_TOLD = ("newly_supported", "fixed", "new_failures", "coverage_lost", "other_changes")


def _suite(case_id: str) -> str:
    return test_of(case_id).split("/", 1)[0]


def fold(diff: Diff) -> list[str]:
    """`kprobe_multi 9 SKIP -> PASS` per suite and change, then the cases only on one side
    and the splats, from compare.compare()'s diff (older kernel as base)."""
    counts: dict[tuple[str, str, str], int] = {}
    for name in _TOLD:
        for e in getattr(diff, name):
            if e.series is None:
                continue   # a case the newer kernel does not have: told below
            key = (_suite(e.id), str(e.base), e.series)
            counts[key] = counts.get(key, 0) + 1
    out = [f"{suite} {n} {old} -> {new}" for (suite, old, new), n in counts.items()]
    one_sided = {"newer": diff.only_in_series + diff.new_cases_failing,
                 "older": diff.only_in_base + [e for e in diff.coverage_lost if e.series is None]}
    for side, entries in one_sided.items():
        by_suite: dict[str, int] = {}
        for e in entries:
            by_suite[_suite(e.id)] = by_suite.get(_suite(e.id), 0) + 1
        out += [f"{suite} {n} case(s) only in the {side} kernel" for suite, n in by_suite.items()]
    if diff.new_splats:
        out.append(f"{len(diff.new_splats)} new kernel splat(s): "
                   + "; ".join(s.title[:60] for s in diff.new_splats[:3]))
    if diff.gone_splats:
        out.append(f"{len(diff.gone_splats)} splat(s) gone: "
                   + "; ".join(s.title[:60] for s in diff.gone_splats[:3]))
    return out


def changes(cells: list[tuple[str, str, RunRecord]]) -> list[dict]:
    """cells: (arch, kernel name, results data) in the spec's order; for each arch, each
    kernel against the one before it. Cells without cases (a failed build) are passed over."""
    by_arch: dict[str, list[tuple[str, RunRecord]]] = {}
    for arch, kernel, run in cells:
        if run.cases:
            by_arch.setdefault(arch, []).append((kernel, run))
    out = []
    for arch, runs in by_arch.items():
        for (old_name, old), (new_name, new) in zip(runs, runs[1:]):
            diff = compare.compare(old, new)
            out.append({"arch": arch, "older": old_name, "newer": new_name, "changes": fold(diff),
                        "older_run": old.run_id, "newer_run": new.run_id})
    return out


def render(found: list[dict]) -> str:
    lines = []
    for c in found:
        lines.append(f"{c['arch']}: {c['older']} -> {c['newer']}: "
                     + ("; ".join(c["changes"]) if c["changes"] else "no difference"))
    return "\n".join(lines)
