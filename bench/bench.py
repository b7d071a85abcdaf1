#!/usr/bin/env python3
"""`make bench`: how long a tracing developer waits, measured on this machine.

Scenarios (ARCH=x86_64 by default), each repeated and reported as a median with its
ratio against the raw floor -- the same work done with plain make and qemu commands:

  cold first run     the first `make test` on an empty cache (ccache included; the tree's
                     tarball, once fetched, linked in so the network is not timed) against
                     the raw floor on the same tarball in the same run: tar x, make
                     allnoconfig with the same fragments (KCONFIG_ALLCONFIG), make -j of
                     the same targets with plain gcc, plain qemu with the same image; the
                     build as a ratio (target <= 1.10x, issue 33), the whole run beside it
  no-change re-run   `make test` right after a finished one: seconds until QEMU starts,
                     against a plain `make` of the unchanged build dir
  one-patch rebuild  a series whose one patch edits kernel/trace/trace_probe.c, the next
                     revision editing it again: the build stage, against `touch` + `make`
  first series build the first build of a one-file series after its base was built (the
                     worktree's build dir removed first), against touch + make of that
                     file in the base's build dir
  second tree        the first build of a clone of the default tree at another path, once
                     the default tree is built: its ccache hits (the tree view) and its
                     time, against the cold row's plain build

  wedged guest       an Oops, then a case that never ends (tests/faults/tc's LKDTM case),
                     then a case after it: from the case's start to the next case's guest
                     at its shell (the Oops comes at once), against the 30 s grace plus
                     the restart that a wedged guest cost before (target <= 10 s)

  boot to shell      QEMU start to the guest's shell, against plain qemu with the same
                     kernel, initramfs and command line, timed to the same READY line
  suites             dynevent+kprobe: the suite stage, the guest's own time (its uptime
                     at each case's markers), the orchestrator's overhead and its share of
                     the time from built kernel and image to the last result; the cases
                     that take longest

  QEMU 10 vs 7.2     the same dynevent+kprobe suite on the same arch under each QEMU build
                     (QEMU=debian: Debian 12's 7.2, QEMU=backports: 10.0), one after the
                     other in this run: boot to the guest's shell and the suite stage, as
                     10.0/7.2 ratios, with each build's counts

  2 guests vs 1      the default suites with --guests 1 and --guests 2 (the default on two
                     cores), one after the other: the suite stage as a ratio, and every
                     case whose status differs between the two (target: none, <= 0.60x; the
                     two guests take the cases longest first, by the one-guest run's times)

  pytest -n 1 / -n 2 the same dynevent+kprobe cases as pytest items (the plugin): wall time
                     of the whole pytest command (build reused) with one guest and with
                     two (one per xdist worker), serial console and SSH

  series, every arch `ARCH=a,b,... SERIES=... COMPARE=1` from warm caches (every arch's base
                     built and run first, untimed), a one-patch series: each arch alone, one
                     after the other, then all of them side by side (series/lanes.py): the
                     wall times, and per arch its series build, suites and confirmation
                     (target: all five <= 10 min). Only with two arches or more:
                     `make bench ARCH=x86_64,arm64 ONLY=everyarch`; its figures go to
                     bench-every-arch.json

  load a run         results.json of a stored series run (tests/data/runs/x86_64-series)
                     read back and checked: the model's loader (msgspec) against
                     validating the same file with jsonschema on the generated schema

It informs, it never fails: the figures go to results/bench-<date>/bench-<arch>.json.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import re
import select
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent  # run from a checkout: orchestrator/ is beside bench/

# The targets of a developer's time to a verdict, each defined once for every table here.
COLD_BUILD_TARGET = "<= 1.10x"           # the first build against plain make
EVERY_ARCH_TARGET = "<= 600 s"           # a one-patch series on all five arches, side by side
TWO_GUESTS_TARGET = "<= 0.60x"           # the default suites on two guests against one

sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from orchestrator import cache, hosttools
from orchestrator.kernel import source


def orchestrator(results: pathlib.Path, arch: str, *extra: str) -> tuple[float, dict]:
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "orchestrator", "test", "--arch", arch,
                        "--results-dir", str(results), *extra],
                       cwd=REPO, capture_output=True, text=True)
    wall = time.monotonic() - t0
    latest = results / "latest"
    data = json.loads((latest.resolve() / "results.json").read_text())
    if p.returncode not in (0, 1):
        sys.stderr.write(p.stderr[-2000:])
        raise SystemExit(f"bench: the orchestrator run failed (exit {p.returncode})")
    return wall, data


def raw_make(tree: source.KernelTree, arch_name: str, build_dir: pathlib.Path) -> float:
    """The build's own make command line (same targets, ccache, -j, the same tree view:
    the dir's .cmd files hold its paths), run by hand."""
    from orchestrator.kernel import build
    from orchestrator.arches import get_arch
    arch = get_arch(arch_name)
    targets = [arch.build_target, "vmlinux"] + (["modules"] if (build_dir / build.MODULES_DIR).is_dir() else [])
    view = build.tree_view(cache.default_cache_root(), tree, build_dir)
    argv = build._make_argv(tree, arch, build_dir, *targets, view=view)
    t0 = time.monotonic()
    subprocess.run(argv, env=hosttools.build_environment(build.make_environment(cache.default_cache_root()))[0],
                   capture_output=True, check=True)
    return time.monotonic() - t0


def raw_boot(qemu_argv: list[str], timeout: float = 300) -> float:
    """Plain qemu, timed to the READY line the image's init prints."""
    t0 = time.monotonic()
    proc = subprocess.Popen(qemu_argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        seen = b""
        # select, not a blocking read: a silent guest must not hang the bench.
        while time.monotonic() - t0 < timeout:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if not ready:
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            seen = (seen + chunk)[-4096:]
            if b"KTO:READY:" in seen:
                return time.monotonic() - t0
        raise SystemExit("bench: plain qemu never printed READY")
    finally:
        proc.kill()
        proc.wait()


def med(values: list[float]) -> float:
    return round(statistics.median(values), 2)


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "-"


def scenario_cold(runs: pathlib.Path, arch: str) -> dict:
    """Two cold builds, one after the other (never at once): the orchestrator's on an
    empty cache, then the raw floor's, each in a dir of the cache that is removed after."""
    import shutil
    from orchestrator.arches import get_arch
    from orchestrator.kernel import build, trees
    cache_root = cache.default_cache_root()
    tree_spec = trees.BUILTIN_TREES[trees.DEFAULT_TREE]
    tarball = trees.ensure_tarball(tree_spec, cache_root, say=lambda *_: None)
    cold = cache_root / "bench-cold"
    raw = cache_root / "bench-raw"
    for d in (cold, raw):
        shutil.rmtree(d, ignore_errors=True)
    try:
        seeded = tree_spec.tarball_in(cold)
        if seeded != tarball:   # a fetched tarball: linked in, so the first run does not fetch
            seeded.parent.mkdir(parents=True)
            os.link(tarball, seeded)
        wall, data = orchestrator(runs / "cold", arch, "--suite", "kprobe_multi", "--guests", "1",
                                  "--cache-dir", str(cold))
        stages = data["stages"]
        ours_build = stages["build"]["seconds"]   # the stage's wall time: its config step included
        row = get_arch(arch)
        allconfig = pathlib.Path(stages["build"]["build_dir"]) / build.ALLCONFIG
        raw.mkdir(parents=True)
        shutil.copy(allconfig, raw / "allconfig")
        t0 = time.monotonic()
        subprocess.run(["tar", "-xJf", str(tarball), "-C", str(raw), "--no-same-owner"], check=True)
        (src,) = [d for d in raw.iterdir() if d.is_dir()]
        unpack = time.monotonic() - t0
        out = raw / "out"
        make = ["make", "-C", str(src), f"O={out}", *row.make_vars(), f"CC={row.compiler}",
                f"-j{os.cpu_count() or 1}"]
        env = dict(os.environ, KBUILD_BUILD_USER="orchestrator", KBUILD_BUILD_HOST="localhost")
        t1 = time.monotonic()
        subprocess.run([*make, f"KCONFIG_ALLCONFIG={raw / 'allconfig'}", "allnoconfig"],
                       env=env, capture_output=True, check=True)
        targets = [row.build_target, "vmlinux"]
        config_lines = (out / ".config").read_text().splitlines()
        modular = "CONFIG_MODULES=y" in config_lines
        # The same targets as kernel/build.py asks for, and the same modules install.
        targets += ["modules"] * modular + ["scripts_gdb"] * ("CONFIG_GDB_SCRIPTS=y" in config_lines)
        subprocess.run([*make, *targets], env=env, capture_output=True, check=True)
        if modular:
            subprocess.run([*make, "modules_install", f"INSTALL_MOD_PATH={raw / 'modules'}", "INSTALL_MOD_STRIP=1"],
                           env=env, capture_output=True, check=True)
        raw_build = time.monotonic() - t1
        raw_boot_s = raw_boot(data["qemu_argv"])
        until_shell = stages["boot"]["at"] + stages["boot"]["seconds_to_shell"]
        return {"first_run_wall_seconds": round(wall, 1), "until_shell_seconds": round(until_shell, 1),
                "build_seconds": round(ours_build, 1),
                "steps": stages["build"].get("steps"), "before_build_seconds": stages["build"].get("at"),
                "boot_to_shell_seconds": stages["boot"]["seconds_to_shell"],
                "raw_unpack_seconds": round(unpack, 1), "raw_build_seconds": round(raw_build, 1),
                "raw_qemu_to_shell_seconds": round(raw_boot_s, 2), "raw_targets": targets}
    finally:
        for d in (cold, raw):
            shutil.rmtree(d, ignore_errors=True)


def scenario_wedged(runs: pathlib.Path, arch: str) -> dict:
    import shutil
    faults = REPO / "tests" / "faults" / "tc"
    tcdir = runs / "wedged-tc"
    shutil.rmtree(tcdir, ignore_errors=True)
    tcdir.mkdir(parents=True)
    for name in ("07_oops_then_silence.tc", "08_after_oops.tc"):
        shutil.copy(faults / name, tcdir / name)
    _, data = orchestrator(runs / "wedged", arch, "--suite", "tcscripts", "--tcdir", str(tcdir), "--guests", "1")
    oops, after = data["cases"]
    restart = (data["stages"]["suites"].get("restart_seconds") or [None])[0]
    if oops["status"] != "ERROR" or restart is None or after["status"] != "PASS":
        raise SystemExit(f"bench: the wedged-guest case did not wedge and restart as expected: "
                         f"{oops['status']}, {after['status']}, restarts {restart}")
    from orchestrator.suites.runner import WEDGED_GRACE_SECONDS
    return {"oops_case_seconds": oops["seconds"], "restart_seconds": restart,
            "oops_to_next_case_seconds": round(oops["seconds"] + restart, 2),
            "old_grace_seconds": WEDGED_GRACE_SECONDS, "reason": oops["reason"][:160]}


def scenario_no_change(runs: pathlib.Path, arch: str, repeat: int) -> dict:
    orchestrator(runs / "warm", arch, "--suite", "kprobe_multi")     # make sure all is built
    pre, boot, raw_boot_s, walls = [], [], [], []
    data = {}
    for i in range(repeat):
        wall, data = orchestrator(runs / f"nochange-{i}", arch, "--suite", "kprobe_multi")
        walls.append(wall)
        pre.append(data["stages"]["boot"]["at"])
        boot.append(data["stages"]["boot"]["seconds_to_shell"])
        raw_boot_s.append(raw_boot(data["qemu_argv"]))
    build_dir = pathlib.Path(data["stages"]["build"]["build_dir"])
    tree = source.default_tree(cache.default_cache_root(), say=lambda *_: None)
    raw_noop = [raw_make(tree, arch, build_dir) for _ in range(repeat)]
    return {"pre_guest_seconds": med(pre), "raw_make_noop_seconds": med(raw_noop),
            "boot_to_shell_seconds": med(boot), "raw_qemu_to_shell_seconds": med(raw_boot_s),
            "guest_uptime_at_shell": data["stages"]["boot"].get("guest_uptime_at_shell"),
            "wall_seconds": med(walls)}


def scenario_one_patch(runs: pathlib.Path, arch: str, repeat: int) -> dict:
    from conftest import series_on_default_tree
    patches = []
    for n in range(2):
        patches.append(series_on_default_tree(runs, f"rev{n}", [(
            f"tracing/probes: Say what parse_btf_arg() resolves (revision {n})",
            [("kernel/trace/trace_probe.c", "static int parse_btf_arg(char *varname,",
              f"/* Resolve a BTF-named argument into fetch insns (revision {n}). */\n"
              "static int parse_btf_arg(char *varname,")])]))
    orchestrator(runs / "series-warm", arch, "--suite", "kprobe_multi", "--series", str(patches[0]))
    builds, raws = [], []
    data = {}
    for i in range(repeat):
        _, data = orchestrator(runs / f"series-{i}", arch, "--suite", "kprobe_multi",
                               "--series", str(patches[(i + 1) % 2]))
        builds.append(data["stages"]["build"]["seconds"])
    from orchestrator.series import patches as series
    tree = source.default_tree(cache.default_cache_root(), say=lambda *_: None)
    worktree = series.worktree_tree(series.worktree_for(tree, cache.default_cache_root(), arch), "bench")
    build_dir = pathlib.Path(data["stages"]["build"]["build_dir"])
    for _ in range(repeat):
        (worktree.path / "kernel/trace/trace_probe.c").touch()
        raws.append(raw_make(worktree, arch, build_dir))
    return {"rebuild_seconds": med(builds), "raw_touch_make_seconds": med(raws)}


def scenario_first_series(runs: pathlib.Path, arch: str) -> dict:
    """The first build of a series after a built base: the worktree's build dir removed,
    a one-file series built (through the tree view: kernel/treeview.py), against the raw
    floor of rebuilding that file in the base's build dir and relinking (touch + make)."""
    import shutil
    from conftest import series_on_default_tree
    from orchestrator.arches import get_arch
    from orchestrator.kernel import build
    from orchestrator.series import patches as series
    cache_root = cache.default_cache_root()
    orchestrator(runs / "first-series-base", arch, "--suite", "kprobe_multi")   # the base, built
    mbox = series_on_default_tree(runs, "first", [(
        "tracing/probes: Say what parse_btf_arg() resolves (first build)",
        [("kernel/trace/trace_probe.c", "static int parse_btf_arg(char *varname,",
          "/* Resolve a BTF-named argument (first build). */\nstatic int parse_btf_arg(char *varname,")])])
    tree = source.default_tree(cache_root, say=lambda *_: None)
    wt_path = series.worktree_for(tree, cache_root, arch)
    if wt_path.exists():
        wt = series.worktree_tree(wt_path, "bench")
        shutil.rmtree(build.build_dir_for(cache_root, wt, get_arch(arch)), ignore_errors=True)
    _, data = orchestrator(runs / "first-series", arch, "--suite", "kprobe_multi", "--series", str(mbox))
    wt_dir = pathlib.Path(data["stages"]["build"]["build_dir"])
    stamp = cache.read_json(wt_dir / build.STAMP) or {}
    base_dir = build.build_dir_for(cache_root, tree, get_arch(arch))
    (tree.path / "kernel/trace/trace_probe.c").touch()
    raw = raw_make(tree, arch, base_dir)
    return {"first_series_build_seconds": data["stages"]["build"]["seconds"],
            "steps": data["stages"]["build"].get("steps"), "seeded": bool(stamp.get("seeded_from")),
            "raw_touch_make_seconds": round(raw, 1)}


def _series_parts(compare_dir: pathlib.Path) -> dict:
    """An arch's share of a series run with its base: the series' build and suites, and
    the tries that confirmed a difference (each a run of its own, linked from the dir)."""
    def stage(data: dict, name: str) -> float:
        return float((data["stages"].get(name) or {}).get("seconds") or 0.0)
    series = json.loads((compare_dir / "series" / "results.json").read_text())
    tries = [json.loads((d / "results.json").read_text()) for d in sorted(compare_dir.iterdir())
             if d.is_symlink() and d.name not in ("base", "series") and (d / "results.json").exists()]
    return {"build_seconds": round(stage(series, "build"), 1), "suites_seconds": round(stage(series, "suites"), 1),
            "confirm_seconds": round(sum(stage(t, n) for t in tries for n in ("build", "boot", "suites")), 1),
            "tries": len(tries), "counts": status_counts(series)}


def _series_run(results: pathlib.Path, arches: list[str], mbox: pathlib.Path) -> tuple[float, dict]:
    """`orchestrator test --arch a,b --series mbox --compare-base`: its wall time and each
    arch's parts, with when its comparison was written (seconds from the start)."""
    t0, start = time.monotonic(), time.time()
    p = subprocess.run([sys.executable, "-m", "orchestrator", "test", "--arch", ",".join(arches),
                        "--series", str(mbox), "--compare-base", "--results-dir", str(results)],
                       cwd=REPO, capture_output=True, text=True)
    wall = time.monotonic() - t0
    (results / "output.txt").write_text(p.stdout + p.stderr)
    if not list(results.glob("*-compare")):
        sys.stderr.write(p.stdout[-3000:] + p.stderr[-2000:])
        raise SystemExit(f"bench: the series run on {','.join(arches)} compared nothing (exit {p.returncode})")
    parts = {}
    for d in sorted(results.glob("*-compare")):
        arch = next(a for a in arches if f"-{a}-" in d.name)
        parts[arch] = {**_series_parts(d),
                       "done_after_seconds": round((d / "compare.json").stat().st_mtime - start, 1)}
    for arch in arches:   # an arch that got no comparison (its base or series failed) says so
        parts.setdefault(arch, {"failed": next((line for line in p.stderr.splitlines()
                                                if line.startswith(f"orchestrator: {arch}: ")), "no comparison")})
    return round(wall, 1), parts


def scenario_every_arch(runs: pathlib.Path, arches: list[str]) -> dict:
    """A one-patch series on every arch given, from warm caches: each alone, then side by side."""
    from conftest import series_on_default_tree
    stamp = dt.datetime.now().strftime("%H%M%S")

    def mbox(name: str) -> pathlib.Path:   # a new revision each time: every arch rebuilds the file
        return series_on_default_tree(runs, f"every-{name}", [(
            f"tracing/probes: Say what parse_btf_arg() resolves ({name} {stamp})",
            [("kernel/trace/trace_probe.c", "static int parse_btf_arg(char *varname,",
              f"/* Resolve a BTF-named argument ({name} {stamp}). */\nstatic int parse_btf_arg(char *varname,")])])
    wall, _ = _series_run(runs / "every-warm", arches, mbox("warm"))   # every base built and run: not timed
    print(f"bench: every arch warmed up in {wall}s", flush=True)
    alone = {}
    for arch in arches:
        wall, parts = _series_run(runs / f"every-alone-{arch}", [arch], mbox(f"alone-{arch}"))
        alone[arch] = {"wall_seconds": wall, **parts[arch]}
        print(f"bench: {arch} alone {wall}s", flush=True)
    wall, parts = _series_run(runs / "every-side", arches, mbox("side"))
    return {"arches": arches, "alone": alone, "side_by_side": {"wall_seconds": wall, "per_arch": parts}}


def render_every_arch(f: dict) -> str:
    e = f["every_arch"]
    alone_sum = round(sum(a["wall_seconds"] for a in e["alone"].values()), 1)
    side = e["side_by_side"]
    lines = [f"bench series on every arch ({', '.join(e['arches'])}) on {f['machine']['cpus']} CPUs "
             f"({f['machine']['model']}), {f['date']}",
             f"  side by side {side['wall_seconds']}s vs one after the other {alone_sum}s: "
             f"{ratio(side['wall_seconds'], alone_sum)} (target: all five {EVERY_ARCH_TARGET})"]
    for arch in e["arches"]:
        a, s = e["alone"][arch], side["per_arch"].get(arch, {})
        if "failed" in a or "failed" in s:
            lines.append(f"  {arch:12} no comparison: {a.get('failed') or s.get('failed')}")
            continue
        lines.append(f"  {arch:12} alone {a['wall_seconds']}s (build {a['build_seconds']}s, suites "
                     f"{a['suites_seconds']}s, confirm {a['confirm_seconds']}s); side by side: done after "
                     f"{s.get('done_after_seconds', '-')}s (build {s.get('build_seconds', '-')}s, suites "
                     f"{s.get('suites_seconds', '-')}s, confirm {s.get('confirm_seconds', '-')}s)")
    return "\n".join(lines)


def _ccache_counts(env: dict[str, str]) -> dict[str, int]:
    out = subprocess.run(["ccache", "--print-stats"], env=env, capture_output=True, text=True).stdout
    return {k: int(v) for k, v in re.findall(r"^(\w+)\t(\d+)$", out, re.M)}


def scenario_second_tree(runs: pathlib.Path, arch: str) -> dict:
    """The first build of a second tree at another path (a clone of the default tree), once
    the default tree is built: through the tree view (kernel/treeview.py) its compiles hit
    what the first tree's build stored. Against the cold row's raw floor, when there is one."""
    import shutil
    from orchestrator.kernel import build
    cache_root = cache.default_cache_root()
    orchestrator(runs / "second-tree-base", arch, "--suite", "kprobe_multi")   # the first tree, built
    tree = source.default_tree(cache_root, say=lambda *_: None)
    clone = cache_root / "bench-second-tree" / "linux"
    shutil.rmtree(clone.parent, ignore_errors=True)
    clone.parent.mkdir(parents=True)
    try:
        subprocess.run(["git", "clone", "-q", "--shared", str(tree.path), str(clone)], check=True)
        env = hosttools.build_environment(build.make_environment(cache_root))[0]
        before = _ccache_counts(env)
        _, data = orchestrator(runs / "second-tree", arch, "--suite", "kprobe_multi", "--kernel", str(clone))
        after = _ccache_counts(env)
    finally:
        from orchestrator.kernel.source import slug_for
        shutil.rmtree(cache_root / "build" / slug_for(clone), ignore_errors=True)
        shutil.rmtree(clone.parent, ignore_errors=True)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in ("direct_cache_hit", "preprocessed_cache_hit", "cache_miss")}
    return {"build_seconds": data["stages"]["build"]["seconds"], "steps": data["stages"]["build"].get("steps"),
            "ccache_hits": delta["direct_cache_hit"] + delta["preprocessed_cache_hit"],
            "ccache_misses": delta["cache_miss"], "view": build.tree_view(cache_root, tree, clone) is not None}


def scenario_suites(runs: pathlib.Path, arch: str) -> dict:
    # One guest: the per-case overhead is a single guest's round trip.
    _, data = orchestrator(runs / "suites", arch, "--suite", "dynevent,kprobe", "--guests", "1")
    return suite_figures(data)


def scenario_debug(runs: pathlib.Path, arch: str) -> dict:
    """KCONFIG=debug (lockdep, sleep-in-atomic, KASAN, kmemleak) against the default config: a cold
    build on an empty cache (the default one's is the cold scenario's, in the same bench
    run), and the kprobe suite on each kernel, two guests each."""
    import shutil
    from orchestrator.kernel import trees
    cache_root = cache.default_cache_root()
    tree_spec = trees.BUILTIN_TREES[trees.DEFAULT_TREE]
    tarball = trees.ensure_tarball(tree_spec, cache_root, say=lambda *_: None)
    cold = cache_root / "bench-debug"
    shutil.rmtree(cold, ignore_errors=True)
    try:
        seeded = tree_spec.tarball_in(cold)
        if seeded != tarball:
            seeded.parent.mkdir(parents=True)
            os.link(tarball, seeded)
        _, debug = orchestrator(runs / "debug", arch, "--kconfig", "debug", "--suite", "kprobe", "--guests", "2",
                                "--cache-dir", str(cold))
        _, plain = orchestrator(runs / "debug-plain", arch, "--suite", "kprobe", "--guests", "2")
        return {"build_seconds": round(debug["stages"]["build"]["seconds"], 1),
                "suites_seconds": round(debug["stages"]["suites"]["seconds"], 1),
                # kmemleak's scan after the last case, each guest's (inside suites_seconds)
                "leak_scan_seconds": debug["stages"]["suites"].get("leak_scan_seconds") or [],
                "plain_suites_seconds": round(plain["stages"]["suites"]["seconds"], 1),
                "counts": debug["counts"], "plain_counts": plain["counts"], "splats": len(debug["splats"])}
    finally:
        shutil.rmtree(cold, ignore_errors=True)


def scenario_load(runs: pathlib.Path, arch: str) -> dict:
    """The loader every reader of results.json goes through, against jsonschema on the
    schema generated from the same model: the choice model.py's docstring names."""
    import jsonschema
    from orchestrator.results import recorder
    run_dir = REPO / "tests" / "data" / "runs" / "x86_64-series"
    raw = (run_dir / "results.json").read_bytes()
    validator = jsonschema.Draft202012Validator(json.loads(recorder.RESULTS_SCHEMA.read_text()))

    def best_of(what, n: int) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            what()
            times.append(time.perf_counter() - t0)
        return min(times)
    loader = best_of(lambda: recorder.load_run(run_dir), 200)
    schema = best_of(lambda: validator.validate(json.loads(raw)), 20)
    return {"bytes": len(raw), "load_run_ms": round(loader * 1000, 3), "jsonschema_ms": round(schema * 1000, 3)}


def status_counts(data: dict) -> dict[str, int]:
    counts: dict[str, int] = {}
    for c in data["cases"]:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    return counts


def scenario_guests(runs: pathlib.Path, arch: str) -> dict:
    """The default suites on one guest, then on two (--guests: suites/pool.py)."""
    by = {}
    for n in (1, 2):
        _, data = orchestrator(runs / f"guests-{n}", arch, "--guests", str(n))
        by[n] = data
    status = {n: {c["id"]: c["status"] for c in d["cases"]} for n, d in by.items()}
    differ = sorted(f"{i}: {status[1].get(i, '-')} -> {status[2].get(i, '-')}"
                    for i in set(status[1]) | set(status[2]) if status[1].get(i) != status[2].get(i))
    return {str(n): {"run": d["run_id"], "suites_seconds": d["stages"]["suites"]["seconds"],
                     "boots": d["stages"]["suites"].get("boots"), "counts": status_counts(d),
                     "order": (d.get("guests") or {}).get("order")}
            for n, d in by.items()} | {"differ": differ}


def pytest_wall(runs: pathlib.Path, arch: str, workers: int, transport: str) -> dict:
    out = runs / f"pytest-n{workers}-{transport}"
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-n", str(workers),
                        "--arch", arch, "--suite", "dynevent,kprobe", "--transport", transport,
                        "--orchestrator-results-dir", str(out)], cwd=out, capture_output=True, text=True)
    wall = round(time.monotonic() - t0, 1)
    # pytest's own last word ("2 failed, 40 passed, 1 skipped in 70.37s"), not a progress line.
    tail = next((l for l in reversed(p.stdout.splitlines()) if " in " in l and ("passed" in l or "failed" in l)), "?")
    return {"workers": workers, "transport": transport, "wall_seconds": wall, "pytest_says": tail}


def scenario_qemu(runs: pathlib.Path, arch: str) -> dict:
    from orchestrator.vm.emulators import EMULATORS
    builds = {}
    for name in EMULATORS:
        # Once unmeasured first: a boot route of its own (loongarch64) builds another kernel.
        orchestrator(runs / f"qemu-{name}-warm", arch, "--suite", "kprobe_multi", "--qemu", name)
        _, data = orchestrator(runs / f"qemu-{name}", arch, "--suite", "dynevent,kprobe", "--qemu", name,
                               "--guests", "1")
        builds[name] = {"version": data["versions"]["qemu"], "run": data["run_id"],
                        "boot_route": (data.get("boot_route") or {}).get("name", "direct"),
                        "boot_to_shell_seconds": data["stages"]["boot"]["seconds_to_shell"],
                        "suites_seconds": data["stages"]["suites"]["seconds"], "counts": status_counts(data)}
    return builds


def scenario_pytest(runs: pathlib.Path, arch: str) -> dict:
    rows = [pytest_wall(runs, arch, n, t) for t in ("serial", "ssh") for n in (1, 2)]
    return {"runs": rows}


def suite_figures(data: dict) -> dict:
    """The orchestrator's own share of the time from a built kernel and image to the last
    result: per case, host time minus the guest's own (its uptime at the markers); for the
    boot, QEMU start to shell minus the guest's uptime there. A case that wedged the guest
    (Oops, hang: no END marker) is time spent waiting on the kernel, counted apart."""
    cases = data["cases"]
    timed = [c for c in cases if c.get("guest_seconds") is not None]
    wedged = [c for c in cases if c.get("guest_seconds") is None]
    boot, suites = data["stages"]["boot"], data["stages"]["suites"]
    guest = sum(c["guest_seconds"] for c in timed)
    # A restart after a crash happens inside the next case's host time: its guest part
    # (the kernel booting) is the guest's time, the rest is ours.
    restart_guest = sum(g or 0 for g in suites.get("restart_guest_seconds", []))
    per_case = sum(c["seconds"] for c in timed) - guest - restart_guest
    first_boot = boot["seconds"] - (boot.get("guest_uptime_at_shell") or 0)
    wait = sum(c["seconds"] for c in wedged)
    total = boot["seconds"] + suites["seconds"]
    # Neither a case nor the first boot: the halt, bookkeeping between cases.
    between = suites["seconds"] - sum(c["seconds"] for c in cases)
    overhead = per_case + first_boot + between
    slowest = sorted(cases, key=lambda c: -c["seconds"])[:6]
    return {"cases": len(cases), "suites_seconds": data["stages"]["suites"]["seconds"],
            "guest_case_seconds": round(guest, 2), "boot_and_suites_seconds": round(total, 2),
            "guest_boot_seconds": boot.get("guest_uptime_at_shell"),
            "restart_guest_seconds": round(restart_guest, 2),
            "wedged_guest_seconds": round(wait, 2), "wedged_cases": [c["id"] for c in wedged],
            "overhead_seconds": round(overhead, 2),
            "overhead_share": round(overhead / (total - wait), 4) if total > wait else None,
            "per_case_round_trip_seconds": round(per_case / len(timed), 3) if timed else None,
            "restarts": max((c.get("boot", 1) for c in cases), default=1) - 1,
            "slowest": [{"id": c["id"], "seconds": c["seconds"], "status": c["status"]} for c in slowest]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default=os.environ.get("ARCH") or "x86_64")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip", action="append", default=[], type=_scenarios,
                    help="leave these scenarios out (comma-separated)")
    ap.add_argument("--only", action="append", default=[], type=_scenarios,
                    help="run only these scenarios, comma-separated (the others keep their figures of "
                         "an earlier run today)")
    ap.add_argument("--suites-from", default=None, metavar="RUN_DIR",
                    help="take the suite figures from this run instead of running the suites")
    args = ap.parse_args()
    from orchestrator import arches
    only = {s for group in args.only for s in group}
    skip = {s for group in args.skip for s in group} | ({s for s in SCENARIOS if s not in only} if only else set())
    selected = [a.name for a in arches.select(args.arch)]
    per_arch = [s for s in SCENARIOS if s != "everyarch" and s not in skip]
    every_arch = "everyarch" not in skip and len(selected) > 1
    # Beside the every-arch row, the per-arch rows run on the first arch named: each arch's
    # cold builds alone would take an hour here. ARCH=arm64 alone gives arm64's.
    per_arch_arches = selected[:1] if every_arch else selected
    if every_arch and per_arch and len(selected) > 1:
        print(f"bench: {', '.join(per_arch)} on {selected[0]}, the every-arch row on {', '.join(selected)}")
    for arch in per_arch_arches if per_arch or args.suites_from else []:
        bench_arch(arch, args, skip | {"everyarch"})
    if every_arch:
        bench_every_arch(selected)
        if {"cold", "guests"} <= set(per_arch):
            print()
            print(render_time_to_verdict(_today(f"bench-{selected[0]}.json"), _today("bench-every-arch.json")))
    elif "everyarch" in only:
        print("bench: the every-arch row needs two arches or more (ARCH=x86_64,arm64,...)")
    return 0


def _today(name: str) -> dict:
    return cache.read_json(REPO / "results" / f"bench-{dt.date.today():%Y%m%d}" / name) or {}


def render_time_to_verdict(per_arch: dict, every: dict) -> str:
    """The three rows of a developer's time to a verdict, from this one run: the first
    build against plain make, every arch side by side against one after the other, two
    guests against one (`make bench ARCH=all ONLY=cold,guests,everyarch`)."""
    rows = [("time to a verdict", "figure", "against", "ratio", "target")]
    if "cold" in per_arch:
        c = per_arch["cold"]
        rows.append((f"first build, empty ccache ({per_arch['arch']})", f"{c['build_seconds']}s",
                     f"{c['raw_build_seconds']}s plain make", ratio(c["build_seconds"], c["raw_build_seconds"]),
                     COLD_BUILD_TARGET))
    if "every_arch" in every:
        e = every["every_arch"]
        alone = [a["wall_seconds"] for a in e["alone"].values() if "wall_seconds" in a]
        side = e["side_by_side"]["wall_seconds"]
        rows.append((f"a series on {len(e['arches'])} arches, side by side", f"{side}s",
                     f"{round(sum(alone), 1)}s one after the other", ratio(side, sum(alone)), EVERY_ARCH_TARGET))
    if "guests" in per_arch:
        g1, g2 = per_arch["guests"]["1"], per_arch["guests"]["2"]
        rows.append(("default suites, 2 guests vs 1", f"{g2['suites_seconds']}s", f"{g1['suites_seconds']}s 1 guest",
                     ratio(g2["suites_seconds"], g1["suites_seconds"]), TWO_GUESTS_TARGET))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(col.ljust(w) for col, w in zip(r, widths)).rstrip() for r in rows)


def bench_every_arch(selected: list[str]) -> None:
    out_dir = REPO / "results" / f"bench-{dt.date.today():%Y%m%d}"
    runs = out_dir / "runs-every-arch"
    runs.mkdir(parents=True, exist_ok=True)
    figures = {"date": dt.datetime.now().isoformat(timespec="seconds"),
               "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release, "model": _cpu_model()},
               "every_arch": scenario_every_arch(runs, selected)}
    cache.atomic_write_json(out_dir / "bench-every-arch.json", figures)
    print(render_every_arch(figures))
    print(f"\n(figures in {out_dir / 'bench-every-arch.json'})")


def _scenarios(text: str) -> list[str]:
    names = [n for n in text.replace(",", " ").split() if n]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise argparse.ArgumentTypeError(f"no scenario named {', '.join(unknown)}; the scenarios are "
                                         f"{', '.join(SCENARIOS)}")
    return names


SCENARIOS = ("cold", "nochange", "patch", "firstseries", "secondtree", "suites", "wedged", "guests", "qemu", "pytest",
             "load", "debug", "everyarch")
# scenario -> its key in bench-<arch>.json
_FIGURES = {"cold": "cold", "nochange": "no_change", "patch": "one_patch", "firstseries": "first_series",
            "secondtree": "second_tree", "suites": "suites",
            "wedged": "wedged", "guests": "guests", "qemu": "qemu", "pytest": "pytest", "load": "load",
            "debug": "debug"}


def bench_arch(arch: str, args: argparse.Namespace, skip: set[str]) -> None:
    out_dir = REPO / "results" / f"bench-{dt.date.today():%Y%m%d}"
    runs = out_dir / f"runs-{arch}"
    runs.mkdir(parents=True, exist_ok=True)
    figures: dict = {"arch": arch, "date": dt.datetime.now().isoformat(timespec="seconds"),
                     "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release,
                                 "model": _cpu_model()}, "repeat": args.repeat}
    if "cold" not in skip:
        figures["cold"] = scenario_cold(runs, arch)
    if "nochange" not in skip:
        figures["no_change"] = scenario_no_change(runs, arch, args.repeat)
    if "patch" not in skip:
        figures["one_patch"] = scenario_one_patch(runs, arch, args.repeat)
    if "firstseries" not in skip:
        figures["first_series"] = scenario_first_series(runs, arch)
    if "secondtree" not in skip:
        figures["second_tree"] = scenario_second_tree(runs, arch)
    if args.suites_from:
        figures["suites"] = suite_figures(json.loads((pathlib.Path(args.suites_from) / "results.json").read_text()))
    elif "suites" not in skip:
        figures["suites"] = scenario_suites(runs, arch)
    if "wedged" not in skip:
        figures["wedged"] = scenario_wedged(runs, arch)
    if "guests" not in skip:
        figures["guests"] = scenario_guests(runs, arch)
    if "qemu" not in skip:
        figures["qemu"] = scenario_qemu(runs, arch)
    if "pytest" not in skip:
        figures["pytest"] = scenario_pytest(runs, arch)
    if "load" not in skip:
        figures["load"] = scenario_load(runs, arch)
    if "debug" not in skip:
        figures["debug"] = scenario_debug(runs, arch)
    previous = cache.read_json(out_dir / f"bench-{arch}.json") or {}
    for key in _FIGURES.values():   # a partial re-run keeps the rest
        if key not in figures and key in previous:
            figures[key] = previous[key]
    cache.atomic_write_json(out_dir / f"bench-{arch}.json", figures)
    print(render(figures))
    print(f"\n(figures in {out_dir / f'bench-{arch}.json'})")


def _cpu_model() -> str:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def render(f: dict) -> str:
    rows = [("scenario", "median", "raw floor", "ratio", "target")]
    if "cold" in f:
        c = f["cold"]
        rows.append((f"cold first run: the build ({c['steps']} steps, empty ccache)", f"{c['build_seconds']}s",
                     f"{c['raw_build_seconds']}s (allnoconfig + make, plain gcc)",
                     ratio(c["build_seconds"], c["raw_build_seconds"]), COLD_BUILD_TARGET))
        raw_all = c["raw_unpack_seconds"] + c["raw_build_seconds"] + c["raw_qemu_to_shell_seconds"]
        rows.append(("cold first run: until the guest's shell", f"{c['until_shell_seconds']}s",
                     f"{round(raw_all, 1)}s (tar x + build + qemu)", ratio(c["until_shell_seconds"], raw_all),
                     f"before the build {c['before_build_seconds']}s (unpack, git record, KVM probe)"))
    if "no_change" in f:
        n = f["no_change"]
        rows.append(("no-change re-run: until QEMU starts", f"{n['pre_guest_seconds']}s",
                     f"{n['raw_make_noop_seconds']}s (make, nothing to do)",
                     ratio(n["pre_guest_seconds"], n["raw_make_noop_seconds"]), "< 10 s"))
        rows.append(("boot to the guest's shell", f"{n['boot_to_shell_seconds']}s",
                     f"{n['raw_qemu_to_shell_seconds']}s (plain qemu)",
                     ratio(n["boot_to_shell_seconds"], n["raw_qemu_to_shell_seconds"]), "measure"))
    if "one_patch" in f:
        o = f["one_patch"]
        rows.append(("one-patch rebuild (kernel/trace .c)", f"{o['rebuild_seconds']}s",
                     f"{o['raw_touch_make_seconds']}s (touch + make)",
                     ratio(o["rebuild_seconds"], o["raw_touch_make_seconds"]), "< 90 s"))
    if "first_series" in f:
        fs = f["first_series"]
        how = "seeded from its build dir" if fs.get("seeded") else "not seeded"
        rows.append((f"first series build after a built base ({how})", f"{fs['first_series_build_seconds']}s",
                     f"{fs['raw_touch_make_seconds']}s (touch + make in the base's dir)",
                     ratio(fs["first_series_build_seconds"], fs["raw_touch_make_seconds"]), "< 180 s, <= 1.5x"))
    if "second_tree" in f:
        st = f["second_tree"]
        floor = (f.get("cold") or {}).get("raw_build_seconds")
        looked_up = st["ccache_hits"] + st["ccache_misses"]
        rows.append((f"first build of a second tree elsewhere ({st['ccache_hits']} of {looked_up} compiles "
                     "hit ccache)", f"{st['build_seconds']}s",
                     f"{floor}s (the cold row's plain build)" if floor else "-",
                     ratio(st["build_seconds"], floor) if floor else "-", "< 180 s"))
    if "suites" in f:
        s = f["suites"]
        rows.append((f"dynevent+kprobe ({s['cases']} cases)", f"{s['suites_seconds']}s",
                     f"{s['guest_case_seconds']}s (guest's own)",
                     ratio(s["suites_seconds"], s["guest_case_seconds"]), "measure"))
        rows.append(("orchestrator overhead, built -> last result", f"{s['overhead_seconds']}s",
                     f"of {round(s['boot_and_suites_seconds'] - s['wedged_guest_seconds'], 2)}s "
                     f"(+{s['wedged_guest_seconds']}s waiting on a wedged guest)",
                     f"{100 * s['overhead_share']:.1f}%", "< 5%"))
    if "wedged" in f:
        w = f["wedged"]
        before = w["old_grace_seconds"] + w["restart_seconds"]
        rows.append(("wedged guest: Oops -> next case's guest up", f"{w['oops_to_next_case_seconds']}s",
                     f"{round(before, 1)}s (the {w['old_grace_seconds']:g} s grace + restart)",
                     ratio(w["oops_to_next_case_seconds"], before), "<= 10 s"))
    if "load" in f:
        ld = f["load"]
        rows.append((f"results.json read back ({ld['bytes'] // 1000} KB, checked)", f"{ld['load_run_ms']} ms",
                     f"{ld['jsonschema_ms']} ms (jsonschema alone)",
                     ratio(ld["load_run_ms"], ld["jsonschema_ms"]), "measure"))
    if "debug" in f:
        d, cold = f["debug"], f.get("cold", {}).get("build_seconds")
        rows.append(("KCONFIG=debug: cold build (lockdep, KASAN)", f"{d['build_seconds']}s",
                     f"{cold}s (the cold row's build)" if cold else "-",
                     ratio(d["build_seconds"], cold) if cold else "-", "measure"))
        same = "same statuses" if d["counts"] == d["plain_counts"] else f"{d['counts']} vs {d['plain_counts']}"
        scans = "+".join(f"{x:.0f}" for x in d.get("leak_scan_seconds", []))
        rows.append((f"KCONFIG=debug: kprobe suite, 2 guests ({same}, {d['splats']} splats"
                     + (f"; leak scans {scans}s" if scans else "") + ")",
                     f"{d['suites_seconds']}s", f"{d['plain_suites_seconds']}s (default config)",
                     ratio(d["suites_seconds"], d["plain_suites_seconds"]), "measure"))

    def counts(b: dict) -> str:
        return " ".join(f"{n} {s}" for s, n in sorted(b["counts"].items()))
    if "guests" in f:
        g1, g2 = f["guests"]["1"], f["guests"]["2"]
        differ = f["guests"]["differ"]
        order = "longest first" if (g2.get("order") or "").startswith("longest") else "file order"
        rows.append((f"default suites: 2 guests ({order}) vs 1", f"{g2['suites_seconds']}s",
                     f"{g1['suites_seconds']}s (1 guest)", ratio(g2["suites_seconds"], g1["suites_seconds"]),
                     f"{TWO_GUESTS_TARGET}; " + ("same status for every case" if not differ
                                     else f"{len(differ)} differ: " + "; ".join(differ[:3]))))
    if "qemu" in f and {"debian", "backports"} <= set(f["qemu"]):
        old, new = f["qemu"]["debian"], f["qemu"]["backports"]
        route = "" if old["boot_route"] == new["boot_route"] else f" ({old['boot_route']} vs {new['boot_route']} boot)"
        rows.append((f"QEMU 10.0 vs 7.2: boot to shell{route}", f"{new['boot_to_shell_seconds']}s",
                     f"{old['boot_to_shell_seconds']}s (7.2)",
                     ratio(new["boot_to_shell_seconds"], old["boot_to_shell_seconds"]), "measure"))
        rows.append(("QEMU 10.0 vs 7.2: dynevent+kprobe", f"{new['suites_seconds']}s",
                     f"{old['suites_seconds']}s (7.2)", ratio(new["suites_seconds"], old["suites_seconds"]),
                     f"10.0: {counts(new)}; 7.2: {counts(old)}"))
    if "pytest" in f:
        by = {(r["transport"], r["workers"]): r for r in f["pytest"]["runs"]}
        for transport in ("serial", "ssh"):
            one, two = by.get((transport, 1)), by.get((transport, 2))
            if one and two:
                rows.append((f"pytest dynevent+kprobe, {transport}: -n 2 vs -n 1",
                             f"{two['wall_seconds']}s", f"{one['wall_seconds']}s (-n 1)",
                             ratio(two["wall_seconds"], one["wall_seconds"]), "measure"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [f"bench {f['arch']} on {f['machine']['cpus']} CPUs ({f['machine']['model']}), "
             f"median of {f['repeat']}, {f['date']}"]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    if "suites" in f:
        lines.append("slowest cases: " + ", ".join(f"{c['id']} {c['seconds']}s ({c['status']})"
                                                   for c in f["suites"]["slowest"]))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
