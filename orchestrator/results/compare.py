"""What a series changed against its base: two results.json documents in, the
differences out (cases, splats, config, compiler warnings), as data and as text short
enough for a reply on the mailing list."""
from __future__ import annotations

import pathlib

from .. import model
from ..kernel import buildwarn, kconfig
from ..suites.status import FAILING, PASSED, SKIPPED, counts_line
from ..suites.splats import splat_key
from . import confirm

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


def _cases(data: dict) -> dict[str, dict]:
    return {c["id"]: c for c in data.get("cases", [])}


def _config(run_dir: pathlib.Path | None) -> dict[str, str]:
    if run_dir is None or not (run_dir / "config").exists():
        return {}
    return kconfig.read_dotconfig(run_dir / "config")


def compare(base: dict, series: dict, base_dir: pathlib.Path | None = None,
            series_dir: pathlib.Path | None = None) -> dict:
    """Each case's first result on both sides, classed by what a maintainer acts on:
    failing vs not failing first (FAIL -> ERROR is no news, PASS -> any failing status
    is), then running its check vs skipped (coverage lost, newly supported). A case only
    the series has counts against it when it fails; one only the base has, when it ran."""
    b_cases, s_cases = _cases(base), _cases(series)
    out: dict = {name: [] for name in CASE_LISTS}
    for cid, s in s_cases.items():
        b = b_cases.get(cid)
        ss = s["status"]
        if b is None:
            entry = {"id": cid, "series": ss, "reason": s.get("reason", "")}
            out["new_cases_failing" if ss in FAILING else "only_in_series"].append(entry)
            continue
        bs = b["status"]
        if bs == ss:
            continue
        entry = {"id": cid, "base": bs, "series": ss, "reason": s.get("reason", "")}
        if s.get("test_status"):
            # The test itself said this; the status is the orchestrator's, for a splat.
            entry["test_status"] = s["test_status"]
        out[change_list(bs, ss)].append(entry)
    for cid, b in b_cases.items():
        if cid not in s_cases:
            if b["status"] in SKIPPED:
                out["only_in_base"].append({"id": cid, "base": b["status"]})
            else:   # the series removed (or renamed) a case that ran: its check is gone
                out["coverage_lost"].append({"id": cid, "base": b["status"], "series": None,
                                             "reason": "the case is not in the series' tree"})

    b_splats = {splat_key(s) for s in base.get("splats", [])}
    s_splats = {splat_key(s) for s in series.get("splats", [])}
    out["new_splats"] = [{"kind": s["kind"], "title": s["title"], "case": s.get("case")}
                         for s in series.get("splats", []) if splat_key(s) not in b_splats]
    out["gone_splats"] = [{"kind": s["kind"], "title": s["title"], "case": s.get("case")}
                          for s in base.get("splats", []) if splat_key(s) not in s_splats]

    b_conf, s_conf = _config(base_dir), _config(series_dir)
    out["config"] = {
        "gained": sorted(f"{k}={v}" for k, v in s_conf.items() if k not in b_conf),
        "lost": sorted(f"{k}={v}" for k, v in b_conf.items() if k not in s_conf),
        "changed": sorted(f"{k}={b_conf[k]}->{v}" for k, v in s_conf.items()
                          if k in b_conf and b_conf[k] != v),
    }

    b_warn = base.get("build_warnings") or {}
    s_warn = series.get("build_warnings") or {}
    added, unchecked = [], []
    for path, entries in s_warn.items():
        if path not in b_warn:
            unchecked.append(path)   # the base was not compiled for it: no claim either way
            continue
        old = {buildwarn.message_key(e) for e in b_warn[path]}
        added += [f"{path}:{e}" for e in entries if buildwarn.message_key(e) not in old]
    out["warnings_added"] = added
    out["warnings_unchecked"] = unchecked
    out["regressed"] = confirm.regressed(out)
    return out


def series_failed(base: dict, series: dict, attributed: dict[str, dict]) -> dict:
    """The comparison when the series' kernel did not build or boot (its run failed) and
    the base's did: that is the finding, with the splats the guest printed before it died
    (attributed: splat key -> the patch whose line it names, series/attribute.py)."""
    stages = series.get("stages") or {}
    stage = "build" if (stages.get("build") or {}).get("state") == "failed" else "boot"
    # The stage's own words (the compiler's first error, how the guest died), not the run's
    # verdict, whose advice (check console=) is for a tree that never booted.
    own = (stages.get(stage) or {})
    why = (own.get("first_errors") or [None])[0] or own.get("error") or series.get("verdict") or f"the {stage} failed"
    splats = [{"kind": s["kind"], "title": s["title"], "case": s.get("case"),
               **({"attributed": attributed[splat_key(s)]} if splat_key(s) in attributed else {})}
              for s in series.get("splats", [])]
    out: dict = {name: [] for name in CASE_LISTS}
    out.update(new_splats=[], gone_splats=[], config={"gained": [], "lost": [], "changed": []},
               warnings_added=[], warnings_unchecked=[],
               series_failed={"stage": stage, "why": why, "splats": splats})
    out["regressed"] = confirm.regressed(out)
    return out


def _statuses_note(entry: dict) -> str:
    """` (FAIL, FAIL, ERROR)` when the failing statuses differ between the runs."""
    seen = entry.get("series_statuses") or []
    return f" ({', '.join(seen)})" if len(set(seen)) > 1 else ""


def splat_line(s: dict) -> str:
    where = f" (during {s['case']})" if s.get("case") else ""
    seen = s.get("seen") or {}
    att = s.get("attributed")
    if att:
        why = (f"in a line patch {att['patch']}/{att['patches']} changed: {att['file']}:{att['line']}"
               + (f" ({att['frame']})" if att.get("frame") else ""))
    else:
        why = s.get("why") or ""
    counts = f"seen {seen['series']} with the series, {seen['base']} on the base" if seen else ""
    return f"{s['title']}{where}" + (f": {'; '.join(x for x in (why, counts) if x)}" if why or counts else "")


def _patches(n: int) -> str:
    return f"{n} patch" if n == 1 else f"{n} patches"


def mail_summary(diff: dict, base: dict, series: dict, bisect: dict | None = None,
                 each_patch: dict | None = None) -> str:
    """Plain text for a reply: what ran, on what, and what differed. Facts only."""
    info = series.get("series") or {}
    arch = series.get("arch", "?")
    accel = (series.get("accel") or {}).get("name", "?").upper()
    kernel = series.get("kernel", {})
    lines = [f"{arch} (QEMU {accel}), Linux {kernel.get('version', '?')}, "
             f"base {str(info.get('base_commit', '?'))[:12]}, series: {info.get('title', '?')} "
             f"({_patches(len(info.get('patches', [])))})",
             f"  suites: {', '.join(series.get('suites', []))}",
             f"  base:   {counts_line(model.from_document(base))}",
             f"  series: {counts_line(model.from_document(series))}"]

    def section(title: str, entries: list[str]) -> None:
        if entries:
            lines.append(f"  {title}:")
            lines.extend(f"    {e}" for e in entries)

    failed = diff.get("series_failed")
    if failed:
        lines.append(f"  the series' kernel does not {failed['stage']} (the base's does): {failed['why'][:300]}")
        lines.extend(f"    {splat_line(s)}" for s in failed.get("splats", []))
    tries = diff.get("tries") or {}
    judged = (*confirm.CHANGE_LISTS, "new_splats", "new_cases_failing", "likely_regressions")
    if max(tries.values(), default=1) > 1 and any(diff.get(k) for k in judged):
        lines.append(f"  judged over {tries['series']} series and {tries['base']} base runs (fresh guests): "
                     "a confirmed difference is on every run of one side and none of the other")
    section("new failures (on every series run, no base run)",
            [f"{e['id']}: {e['base']} -> {e['series']}" + _statuses_note(e)
             + (f" ({e['reason'][:100]})" if e["reason"] else "") for e in diff["new_failures"]])
    section(f"likely regressions (mixed runs; {confirm.TEST}, p < {confirm.ALPHA})",
            confirm.likely_lines(diff))
    section("new kernel splats", [splat_line(s) for s in diff["new_splats"]])
    section("coverage lost (the case ran on the base, not with the series)",
            [f"{e['id']}: {e['base']} -> {e['series'] or 'absent'}"
             + (f" ({e['reason'][:100]})" if e.get("reason") else "") for e in diff.get("coverage_lost", [])])
    section("new cases failing (only in the series)",
            [f"{e['id']}: {e['series']}" + (f", failing {e['seen']} runs" if e.get("seen") else "")
             + (f" ({e['reason'][:100]})" if e.get("reason") else "") for e in diff.get("new_cases_failing", [])])
    section("flaky (mixed results the test cannot tell apart: not a difference)", confirm.flaky_lines(diff))
    section("fixed", [f"{e['id']}: {e['base']} -> {e['series']}" for e in diff["fixed"]])
    section("newly supported", [f"{e['id']}: {e['base']} -> {e['series']}" for e in diff["newly_supported"]])
    section("other status changes", [f"{e['id']}: {e['base']} -> {e['series']}" for e in diff["other_changes"]])
    section("cases only in the series", [f"{e['id']}: {e['series']}" for e in diff["only_in_series"]])
    section("cases only in the base", [f"{e['id']}: {e['base']}" for e in diff["only_in_base"]])
    section("splats gone", [s["title"] for s in diff["gone_splats"]])
    section("config options gained", diff["config"]["gained"])
    section("config options lost", diff["config"]["lost"])
    section("config options changed", diff["config"]["changed"])
    section("compiler warnings added in files the series touches", diff["warnings_added"])
    if each_patch:
        if each_patch.get("first_failing"):
            f = each_patch["first_failing"]
            lines.append(f"  builds per patch: patch {f['number']} ({f['subject']}) does not build: "
                         f"{f['error'][:160]}")
        else:
            lines.append(f"  builds per patch: all {each_patch['built']} commit(s) build")
        for t in each_patch.get("tested", []):
            lines.append(f"  patch {t['number']}: {len(t['failing'])} failing case(s), {t['splats']} splat(s)"
                         + (f": {', '.join(t['failing'][:6])}" if t["failing"] else ""))
    if bisect and (bisect["first_bad"] or bisect["unresolved"]):
        if bisect["patches"] == 1:
            lines.append("  bisected (one patch: the base and the series runs above place it):")
        else:
            per_step = bisect.get("tries_per_step", 1)
            lines.append(f"  bisected ({bisect['steps']} step{'s' if bisect['steps'] != 1 else ''} over "
                         f"{_patches(bisect['patches'])}"
                         + (f", {per_step} runs per step" if per_step > 1 else "") + "):")
        for name, p in bisect["first_bad"].items():
            lines.append(f"    {name}: first bad patch {p['number']}/{bisect['patches']} {p['subject']}")
        for name, why in bisect["unresolved"].items():
            lines.append(f"    {name}: {why}")
    if not any(diff.get(k) for k in (*CASE_LISTS, *confirm.REGRESSION_LISTS, "gone_splats")) \
            and not any(diff["config"].values()):
        lines.append("  no difference between base and series")
    return "\n".join(lines)
