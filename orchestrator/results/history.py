"""Each case's results across the runs of one kernel with one set of inputs, kept in the
cache, so known noise shows as what it is: "ERROR in 1 of the last 9 runs of this kernel".

One JSON line per run (its tries included: each is a run of the cases it holds) in
<cache>/history/<key>.jsonl, key = (tree id, pipeline.inputs_digest). Appends are one
write each of a short line, so concurrent runs of the same kernel do not tear lines;
a torn or foreign line is skipped.
"""
from __future__ import annotations

import json
import os
import pathlib

import msgspec

from .. import cache
from ..model import HistoryLine, RunRecord, Spread
from ..suites.splats import splat_key

# How many earlier runs a case's record looks back over.
WINDOW = 20


def path_for(cache_root: pathlib.Path, tree_id: str, inputs: str) -> pathlib.Path:
    return cache_root / "history" / f"{cache.digest(tree_id, inputs)[:24]}.jsonl"


_LINE = msgspec.json.Decoder(HistoryLine)


def earlier(path: pathlib.Path) -> list[HistoryLine]:
    """Every readable line, oldest first."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(_LINE.decode(line))
        except msgspec.DecodeError:   # a torn or foreign line (ValidationError included)
            continue
    return out


def record(path: pathlib.Path, run: RunRecord) -> dict[str, Spread]:
    """Append this run's statuses; return the record of every case of this run whose
    statuses over the window (this run included) are not all the same."""
    past = earlier(path)[-(WINDOW - 1):]
    statuses = {c.id: c.status for c in run.cases}
    out: dict[str, Spread] = {}
    for case_id, status in statuses.items():
        seen = [e.statuses[case_id] for e in past if case_id in e.statuses] + [status]
        if len(set(seen)) > 1:
            counts: dict[str, int] = {}
            for s in seen:
                counts[s] = counts.get(s, 0) + 1
            out[case_id] = Spread(runs=len(seen), counts=counts)
    # The splats too (their keys): a splat with the series is judged against whether this
    # kernel ever showed it (results/confirm.py).
    line = json.dumps({"run_id": run.run_id, "statuses": statuses,
                       "splats": sorted({splat_key(s) for s in run.splats})}) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)
    return out


def window(path: pathlib.Path, leave_out: set[str] = frozenset()) -> list[HistoryLine]:
    """The last WINDOW runs of a kernel but those named (the runs a comparison already
    holds), for the base side of a judgement."""
    return [e for e in earlier(path) if e.run_id not in leave_out][-WINDOW:]


def mark(case_id: str, status: str, spread: Spread) -> str:
    """`ERROR in 1 of the last 9 runs of this kernel` for a case that is `status` now
    (the rarer side of its record: what a reader should weigh)."""
    counts = spread.counts
    shown = status if status != "PASS" else max((s for s in counts if s != "PASS"), key=counts.get)
    return f"{case_id}: {shown} in {counts[shown]} of the last {spread.runs} runs of this kernel"
