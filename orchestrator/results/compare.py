"""What a series changed against its base: two results.json documents in, the
differences out (cases, splats, config, compiler warnings), as data and as text short
enough for a reply on the mailing list."""
from __future__ import annotations

import pathlib

from ..kernel import buildwarn, kconfig
from ..suites.status import FAILING, SKIPPED, counts_line
from ..suites.splats import splat_key
from . import confirm



def _cases(data: dict) -> dict[str, dict]:
    return {c["id"]: c for c in data.get("cases", [])}


def _config(run_dir: pathlib.Path | None) -> dict[str, str]:
    if run_dir is None or not (run_dir / "config").exists():
        return {}
    return kconfig.read_dotconfig(run_dir / "config")


def compare(base: dict, series: dict, base_dir: pathlib.Path | None = None,
            series_dir: pathlib.Path | None = None) -> dict:
    b_cases, s_cases = _cases(base), _cases(series)
    out: dict = {"new_failures": [], "fixed": [], "newly_supported": [], "newly_unsupported": [],
                 "other_changes": [], "only_in_base": [], "only_in_series": []}
    for cid, s in s_cases.items():
        b = b_cases.get(cid)
        if b is None:
            out["only_in_series"].append({"id": cid, "series": s["status"], "reason": s.get("reason", "")})
            continue
        bs, ss = b["status"], s["status"]
        if bs == ss:
            continue
        entry = {"id": cid, "base": bs, "series": ss, "reason": s.get("reason", "")}
        if s.get("test_status"):
            # The test itself said this; the status is the orchestrator's, for a splat.
            entry["test_status"] = s["test_status"]
        if ss in FAILING and bs not in FAILING:
            out["new_failures"].append(entry)
        elif bs in FAILING and ss == "PASS":
            out["fixed"].append(entry)
        elif bs in SKIPPED and ss not in SKIPPED:
            out["newly_supported"].append(entry)
        elif ss in SKIPPED and bs not in SKIPPED:
            out["newly_unsupported"].append(entry)
        else:
            out["other_changes"].append(entry)
    out["only_in_base"] = [{"id": cid, "base": c["status"]} for cid, c in b_cases.items() if cid not in s_cases]

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
    out["regressed"] = bool(out["new_failures"] or out["new_splats"] or added)
    return out


def mail_summary(diff: dict, base: dict, series: dict, bisect: dict | None = None,
                 each_patch: dict | None = None) -> str:
    """Plain text for a reply: what ran, on what, and what differed. Facts only."""
    info = series.get("series") or {}
    arch = series.get("arch", "?")
    accel = (series.get("accel") or {}).get("name", "?").upper()
    kernel = series.get("kernel", {})
    lines = [f"{arch} (QEMU {accel}), Linux {kernel.get('version', '?')}, "
             f"base {str(info.get('base_commit', '?'))[:12]}, series: {info.get('title', '?')} "
             f"({len(info.get('patches', []))} patch(es))",
             f"  suites: {', '.join(series.get('suites', []))}",
             f"  base:   {counts_line(base)}",
             f"  series: {counts_line(series)}"]

    def section(title: str, entries: list[str]) -> None:
        if entries:
            lines.append(f"  {title}:")
            lines.extend(f"    {e}" for e in entries)

    tries = diff.get("tries") or {}
    if max(tries.values(), default=1) > 1 and any(diff.get(k) for k in (*confirm.CHANGE_LISTS, "new_splats")):
        lines.append(f"  every difference below was seen on each of {tries['series']} series and "
                     f"{tries['base']} base runs (fresh guests)")
    section("new failures", [f"{e['id']}: {e['base']} -> {e['series']}"
                             + (f" ({e['reason'][:100]})" if e["reason"] else "") for e in diff["new_failures"]])
    section("new kernel splats", [f"{s['title']}" + (f" (during {s['case']})" if s.get("case") else "")
                                  for s in diff["new_splats"]])
    section("flaky (mixed results on a side: not a difference)", confirm.flaky_lines(diff))
    section("fixed", [f"{e['id']}: {e['base']} -> {e['series']}" for e in diff["fixed"]])
    section("newly supported", [f"{e['id']}: {e['base']} -> {e['series']}" for e in diff["newly_supported"]])
    section("newly unsupported", [f"{e['id']}: {e['base']} -> {e['series']}"
                                  + (f" ({e['reason'][:100]})" if e["reason"] else "") for e in diff["newly_unsupported"]])
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
            lines.append(f"  bisected ({bisect['steps']} step(s) over {bisect['patches']} patch(es)"
                         + (f", {per_step} runs per step" if per_step > 1 else "") + "):")
        for name, p in bisect["first_bad"].items():
            lines.append(f"    {name}: first bad patch {p['number']}/{bisect['patches']} {p['subject']}")
        for name, why in bisect["unresolved"].items():
            lines.append(f"    {name}: {why}")
    if not any(diff[k] for k in ("new_failures", "new_splats", "fixed", "newly_supported",
                                 "newly_unsupported", "other_changes", "only_in_series",
                                 "only_in_base", "gone_splats", "warnings_added")) \
            and not any(diff["config"].values()):
        lines.append("  no difference between base and series")
    return "\n".join(lines)
