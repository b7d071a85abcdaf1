"""The order several guests take a run's cases in: the longest first.

Guests take the next case from one queue (suites/pool.py). In file order a long case
picked last keeps one guest busy while the others have nothing left: the run lasts as
long as that tail. Taking the cases by their recorded time, longest first, spreads the
long ones over the guests from the start (the longest-processing-time rule). A case with
no recorded time (a first run, a case a series adds) goes first: it may be long.

Times are kept per arch and accelerator (a case's time under TCG says little about KVM)
in <cache>/durations/<arch>-<accel>.json, each case's time in its latest run. Which
guest runs a case, and when, does not change what it reports (each case is its own
ftracetest run on a guest that ran whole cases before it), so results.json keeps the
suites' order whatever this one is.
"""
from __future__ import annotations

import pathlib
from typing import Iterable

from .. import cache
from ..model import CaseResult
from .case_id import test_of


def path_for(cache_root: pathlib.Path, arch: str, accel: str) -> pathlib.Path:
    return cache_root / "durations" / f"{arch}-{accel}.json"


def recorded(path: pathlib.Path) -> dict[str, float]:
    """Each case file's latest time in seconds; nothing for an absent or unreadable file."""
    data = cache.read_json(path)
    if not isinstance(data, dict):
        return {}
    return {k: float(v) for k, v in data.items()
            if isinstance(k, str) and isinstance(v, (int, float)) and v >= 0}


def remember(path: pathlib.Path, cases: Iterable[CaseResult]) -> None:
    """This run's times over the recorded ones (a case file's results summed: ftracetest
    runs some cases a second time in an instance, and reports each run)."""
    times: dict[str, float] = {}
    for case in cases:
        if case.seconds <= 0:
            continue   # never ran (its guest did not boot): no time to learn from
        times[test_of(case.id)] = times.get(test_of(case.id), 0.0) + case.seconds
    if times:
        cache.atomic_write_json(path, {**recorded(path), **{k: round(v, 2) for k, v in times.items()}})


def longest_first(case_files: list[str], seconds: dict[str, float]) -> list[int]:
    """The positions of case_files in the order guests should take them: those with no
    recorded time first (in file order), then by recorded time, longest first (ties in
    file order)."""
    return sorted(range(len(case_files)),
                  key=lambda i: (case_files[i] in seconds, -seconds.get(case_files[i], 0.0), i))
