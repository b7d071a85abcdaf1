"""The terminal summary printed at the end of a run, from results.json data alone."""
from __future__ import annotations

from ..suites.status import STATUSES
from ..progress import fmt_duration
from . import causes, history

_NOT_SHOWN = {"PASS"}


def render(data: dict, results_dir: str) -> str:
    counts = data.get("counts") or {}
    kernel = data.get("kernel", {})
    stages = data.get("stages", {})
    out = []
    accel = (data.get("accel") or {}).get("name", "?").upper()
    out.append(f"{data.get('arch')}: Linux {kernel.get('version', '?')} ({kernel.get('origin', '?')}), "
               f"{accel}, {data.get('state')}")
    timing = ", ".join(f"{name} {fmt_duration(s['seconds'])}"
                       + (" (reused)" if s.get("reused") else "")
                       for name, s in stages.items() if s.get("seconds") is not None)
    if timing:
        out.append(f"  stages: {timing}")
    out.append("  " + "  ".join(f"{st} {counts[st]}" for st in STATUSES if counts.get(st))
               + f"  (total {sum(counts.values())})")
    width = max([len(c["id"]) for c in data.get("cases", [])] + [10])
    for c in data.get("cases", []):
        if c["status"] in _NOT_SHOWN:
            continue
        out.append(f"  {c['status']:<11} {c['id']:<{width}}  {c.get('reason', '')[:100]}")
        cause = causes.of(c, data)
        if cause:
            out.append(f"  {'':<11} {'':<{width}}  known cause, {causes.line(cause)[:100]}")
    left = causes.unexplained(data)
    if left:
        out.append(f"  not explained: {len(left)} case(s) that did not pass have no known cause "
                   f"(orchestrator/data/causes.yaml): {', '.join(c['id'] for c in left)[:160]}")
    splats = data.get("splats", [])
    if splats:
        out.append(f"  kernel splats: {len(splats)}")
        for s in splats:
            times = f" x{s['count']}" if s.get("count", 1) > 1 else ""
            out.append(f"    {s['kind']}{times} during {s.get('case') or 'boot/idle'}: {s['title'][:110]}")
    known = [history.mark(c["id"], c["status"], data["history"][c["id"]])
             for c in data.get("cases", []) if c["status"] != "PASS" and c["id"] in (data.get("history") or {})]
    if known:
        out.append("  seen with other results before (known noise?):")
        out.extend(f"    {line}" for line in known)
    cause = data.get("first_cause")
    if cause and cause.get("failing_after"):
        n = len(cause["failing_after"])
        out.append(f"  look first at the {cause['kind']} during {cause['case']}: {n} failing case(s) ran "
                   f"after it and may follow from it ({cause['title'][:80]})")
    dropped = (data.get("config") or {}).get("dropped", [])
    if dropped:
        out.append(f"  config: {len(dropped)} asked option(s) not in the final .config")
        for d in dropped:
            tag = {"unavailable": "not available in this tree", "undefined": "not defined in this tree",
                   "dropped": "dropped"}.get(d["kind"], d["kind"])
            out.append(f"    {d['option']}={d['asked']} -> {d['got']}: {tag}: {d['reason'][:110]}")
    for note in (data.get("config") or {}).get("notes", []):
        out.append(f"  config: {note[:160]}")
    taint = data.get("taint") or {}
    if taint and taint.get("boot") != taint.get("end"):
        out.append(f"  taint: {taint.get('boot')} at boot, {taint.get('end')} at the end")
    out.append(f"  verdict: {data.get('verdict')}   results: {results_dir}")
    return "\n".join(out)
