"""reproduce.sh in every run dir: the run's failing cases again, readable and runnable
by someone who does not have the orchestrator, as the 0-day robot's "reproduce" steps
and tuxmake's reproducer are.

It says where the kernel came from (tree, commit, series and base), the make command
and toolchain versions that built it and the .config beside it (`config`), then boots
the run's own kernel and guest image with the QEMU command line the run used, waits for
the guest's shell and sends it the one command per case that the run sent (the tree's
ftracetest on that case, through the image's /kto/run-case). `REBUILD=1` builds the
kernel from the tree with that config first (in $BUILD, default ./build beside it).

Everything it takes from the run (paths, case ids, which come from the tree or a series)
is shell-quoted: the script runs no text of the run as code.
"""
from __future__ import annotations

import os
import pathlib
import shlex

from .. import cache
from ..model import RunRecord
from ..project import BOOT_TIMEOUT_SECONDS, CASE_TIMEOUT_SECONDS
from ..suites.runner import CaseSpec
from ..suites.status import PASSED

NAME = "reproduce.sh"
GUEST_LOGDIR = "/tmp/kto/repro"


def _q(text: str) -> str:
    return shlex.quote(str(text))


def _comment(text: str) -> str:
    """One comment line: text from the run or a series never ends the comment."""
    return "# " + " ".join(str(text).split())


def _rebuild(run: RunRecord, kernel_image: str) -> list[str]:
    """The REBUILD=1 branch: the run's make command with the tree and build dir as
    variables, the compiler without ccache (a reader need not have it)."""
    build = run.stages.build
    argv = list(build.make_command or []) if build else []
    if not argv or not build or not build.build_dir or run.boot_route and run.boot_route.name == "builtin":
        return ['if [ "${REBUILD:-0}" = 1 ]; then',
                '    echo "reproduce.sh: REBUILD=1 is not offered for this run (no make command recorded, or the '
                'built-in boot route links the image into the kernel)" >&2; exit 2',
                "fi"]
    vars_ = [a for a in argv[1:] if "=" in a and not a.startswith(("O=", "-"))]
    vars_ = [a.replace("CC=ccache ", "CC=", 1) for a in vars_]
    targets = [a for a in argv[1:] if "=" not in a and not a.startswith("-") and a != argv[argv.index("-C") + 1]] \
        if "-C" in argv else []
    rel = os.path.relpath(kernel_image, build.build_dir)
    make = 'make -C "$TREE" O="$BUILD" ' + " ".join(_q(v) for v in vars_)
    return ['if [ "${REBUILD:-0}" = 1 ]; then',
            f"    TREE=${{TREE:-{_q(run.kernel.path)}}}",
            '    BUILD=${BUILD:-$here/build}',
            '    mkdir -p "$BUILD" && cp "$here/config" "$BUILD/.config"',
            f"    {make} olddefconfig",
            f'    {make} -j"$(nproc)" ' + " ".join(_q(t) for t in targets),
            f'    KERNEL_IMAGE=$BUILD/{_q(rel)}',
            "fi"]


def script(run: RunRecord, specs: list[CaseSpec], halt_command: str | None) -> str | None:
    """The script's text; None for a run that never had a QEMU command line."""
    argv = list(run.qemu_argv)
    if not argv or "-kernel" not in argv:
        return None
    k = argv.index("-kernel") + 1
    kernel_image = argv[k]
    initrd = argv[argv.index("-initrd") + 1] if "-initrd" in argv else None
    failing = [c.id for c in run.cases if c.status not in PASSED]
    by_file = {s.id: s for s in specs}
    commands = {}
    for c in run.cases:
        spec = by_file.get(c.id.removesuffix(" (instance)"))
        if spec is not None:
            commands[spec.id] = spec.guest_command(GUEST_LOGDIR)
    # QEMU as the run started it, with the kernel and image as variables (REBUILD=1).
    shown = [_q(a) for a in argv]
    shown[k] = '"$KERNEL_IMAGE"'
    if initrd:
        shown[argv.index("-initrd") + 1] = '"$INITRD"'
    default = list(dict.fromkeys(c.removesuffix(" (instance)") for c in failing if
                                 c.removesuffix(" (instance)") in commands))
    kernel, info, versions = run.kernel, run.series, run.versions
    lines = ["#!/bin/sh",
             _comment(f"Reproduce run {run.run_id}: {run.arch}, Linux {kernel.version}, {run.verdict or run.state}."),
             "# Written by the orchestrator; runs without it: POSIX sh, QEMU, and for REBUILD=1 the",
             "# kernel's build tools. Usage: sh reproduce.sh [CASE...] (default: the cases that did not",
             "# pass); REBUILD=1 builds the kernel from the tree first; TIMEOUT=seconds per case.",
             "#",
             _comment(f"tree: {kernel.path} ({kernel.origin})"),
             _comment(f"commit: {kernel.git_commit or 'not a git tree'}; tree id {kernel.tree_id}")]
    if info:
        lines += [_comment(f"series: {info.spec} ({info.title}), {len(info.patches)} patch(es) on base "
                           f"{info.base_commit}, tip {info.tip_commit}")]
    build = run.stages.build
    if build and build.make_command:
        lines += [_comment("make: " + " ".join(build.make_command))]
    lines += [_comment(f"{name}: {getattr(versions, name)}") for name in ("compiler", "binutils", "make", "pahole",
                                                                        "qemu") if getattr(versions, name, None)]
    lines += ["# config: ./config beside this script (the run's final .config)",
              _comment("qemu: " + " ".join(argv)),
              "#",
              _comment("With the orchestrator, these cases again on the same kernel: "
                       "make test RERUN=<this directory> CASES=<case id>"),
              "set -eu",
              'here=$(cd "$(dirname "$0")" && pwd)',
              f"KERNEL_IMAGE={_q(kernel_image)}"]
    lines += _rebuild(run, kernel_image)
    lines += ['[ -f "$KERNEL_IMAGE" ] || { echo "reproduce.sh: $KERNEL_IMAGE is gone (a later build replaced '
              'it?); run with REBUILD=1" >&2; exit 2; }']
    if initrd:
        lines += [f"INITRD={_q(initrd)}",
                  '[ -f "$INITRD" ] || { echo "reproduce.sh: the guest image $INITRD is gone; make test '
                  'makes it again" >&2; exit 2; }']
    lines += [f"[ $# -gt 0 ] || set -- {' '.join(_q(c) for c in default)}" if default else
              '[ $# -gt 0 ] || { echo "reproduce.sh: every case passed in this run; name the case(s) to run" >&2; '
              'exit 2; }',
              'commands=""',
              'for id in "$@"; do',
              '    case $id in']
    for case_id, command in commands.items():
        lines.append(f"        {_q(case_id)}) commands=\"$commands\"{_q(command)}';';;")
    lines += [f'        *) echo "reproduce.sh: run "{_q(run.run_id)}" has no case $id" >&2; exit 2;;',
              "    esac",
              "done",
              'work=$(mktemp -d)',
              'mkfifo "$work/console"',
              "# The guest's shell reads one command per line on its console once it says KTO:READY.",
              " ".join(shown) + ' <"$work/console" >"$work/out" 2>&1 &',
              "qemu=$!",
              'exec 3>"$work/console"',
              'trap \'kill $qemu 2>/dev/null || true; rm -rf "$work"\' EXIT',
              'tail -n +1 -f "$work/out" & tail=$!',
              # The boot, and the banner's answer, get the run's boot timeout at most: a guest
              # that hangs before its shell must not keep the script waiting for ever.
              f"boot_limit=${{BOOT_TIMEOUT:-{int(BOOT_TIMEOUT_SECONDS)}}}",
              "waited=0",
              'until grep -q "KTO:READY:" "$work/out"; do',
              '    if ! kill -0 $qemu 2>/dev/null || [ $waited -ge $boot_limit ]; then',
              '        kill $tail; echo "reproduce.sh: the guest did not boot (within $boot_limit s)" >&2; exit 1',
              "    fi",
              "    sleep 1; waited=$((waited + 1))",
              "done",
              # A later build (another config, a bisect step) may have replaced the image in
              # place: the guest's own banner says whether this is the run's kernel.
              'printf \'%s\\n\' \'echo "KTO:REPRO:KERNEL:$(cat /proc/version)"\' >&3',
              "waited=0",
              'until grep -q "^KTO:REPRO:KERNEL:" "$work/out"; do',
              '    [ $waited -lt $boot_limit ] && kill -0 $qemu 2>/dev/null || break',
              "    sleep 1; waited=$((waited + 1))",
              "done",
              'seen=$(grep "^KTO:REPRO:KERNEL:" "$work/out" | head -n 1 | sed "s/^KTO:REPRO:KERNEL://" | tr -d "\\r")',
              f"expected={_q(versions.kernel_banner or '')}",
              'if [ -n "$expected" ] && [ "$seen" != "$expected" ] && [ "${ANY_KERNEL:-0}" != 1 ]; then',
              '    kill $tail 2>/dev/null || true',
              '    echo "reproduce.sh: the guest runs another kernel than the run did ($seen); REBUILD=1 builds '
              'the run\'s (ANY_KERNEL=1 runs the cases anyway)" >&2; exit 2',
              "fi",
              'printf \'%s echo KTO:REPRO:DONE\\n\' "$commands" >&3',
              f"limit=$(( ${{TIMEOUT:-{int(CASE_TIMEOUT_SECONDS)}}} * $# ))",
              "waited=0",
              'until grep -q "^KTO:REPRO:DONE" "$work/out"; do',
              '    [ $waited -lt $limit ] && kill -0 $qemu 2>/dev/null || break',
              "    sleep 1; waited=$((waited + 1))",
              "done"]
    if halt_command:
        lines.append(f"printf '%s\\n' {_q(halt_command)} >&3; sleep 2")
    lines += ["kill $tail 2>/dev/null",
              'grep -q "^KTO:REPRO:DONE" "$work/out" || { echo "reproduce.sh: the case(s) did not finish '
              'within $limit s (the guest hung or died: see the console above)" >&2; exit 1; }',
              "exit 0"]
    return "\n".join(lines) + "\n"


def write(run_dir: pathlib.Path, run: RunRecord, specs: list[CaseSpec], halt_command: str | None) -> None:
    text = script(run, specs, halt_command)
    if text is None:
        return
    path = run_dir / NAME
    cache.atomic_write(path, text)
    path.chmod(0o755)
