"""Suites: which cases exist (ftracetest's, tcscripts/, the C guest programs'), and
running them one by one in the guest.

Each case is its own ftracetest invocation. That costs a little guest time per case,
and buys what a kernel developer needs: a per-case timeout, a splat attributed to the
case that was running, a hung or panicked guest that costs one case (ERROR, VM
restarted) instead of the run, and a progress line that knows what is running.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import pathlib
import re
import shlex
import signal
import time
from typing import Callable

from . import caselog, ktap, taint
from .case_id import CaseId
from .status import FAILING
from ..guest import guestprog
from ..vm import qmp
from ..vm.transport import GuestDied, GuestHung, GuestTimeout, Transport, TransportLost
from ..errors import OrchestratorError
from ..guest.image import FTRACE_SELFTESTS, GUEST_FTRACE, GUEST_TCSCRIPTS
from ..project import TCSCRIPTS_DIR
from ..progress import Progress, fmt_duration
from ..model import CaseResult
from .splats import POISONING_KINDS, WEDGING_KINDS, SplatDetector

DEFAULT_SUITES = ("dynevent", "kprobe", "tcscripts", "kprobe_multi")
_UNSENDABLE = re.compile(r"[\x00-\x1f\x7f]")
ALL_FTRACE = "ftrace-all"
# Suites run by a guest program of ours rather than by ftracetest.
PROGRAM_SUITES = guestprog.PROGRAM_SUITES
# After an Oops or a stall the guest rarely finishes the case: it gets this long at most,
# and only while its console still prints: once it has said nothing for
# WEDGED_QUIET_SECONDS after the report, the shell is not coming back (6.12's tprobe
# module Oops: the case's KTAP line, then silence) and the guest is restarted.
WEDGED_GRACE_SECONDS = 30.0
WEDGED_QUIET_SECONDS = 5.0

# The debug kernel's leak scan after the last case. kmemleak reports an object only when
# two scans in a row found it unreferenced with unchanged contents and it is older than
# its minimum age (5 s): wait out the age of the last case's allocations, scan once to
# take the checksums, scan again to report. `verbose` prints each leak (one per
# backtrace) on the console, where the splat detector reads it like any other report.
KMEMLEAK = "/sys/kernel/debug/kmemleak"
LEAK_SCAN_COMMAND = ("echo 1 > /sys/module/kmemleak/parameters/verbose && sleep 5 && "
                     f"echo scan > {KMEMLEAK} && echo scan > {KMEMLEAK}")
# printk may reach the console after the write that printed returned (a console's
# printer thread): the console is read until it has been quiet this long.
LEAK_REPORT_QUIET_SECONDS = 1.0
LEAK_REPORT_MAX_WAIT_SECONDS = 15.0


@dataclasses.dataclass(frozen=True)
class LeakScan:
    """One guest's kmemleak scan after its last case."""
    seconds: float
    error: str | None     # why it did not scan (kmemleak disabled itself, the guest died...)


@dataclasses.dataclass(frozen=True)
class CaseSpec:
    id: str            # dynevent/add_remove_kprobe.tc, tcscripts/fprobe_cycles.tc
    suite: str
    guest_path: str    # the .tc file in the guest, or the guest program
    program_args: tuple[str, ...] = ()   # for a guest program: its arguments

    @property
    def is_program(self) -> bool:
        return self.suite in PROGRAM_SUITES

    def guest_command(self, logdir: str, keep_logs: bool = False) -> str:
        """keep_logs: leave a non-passing case's log dir in the guest, for the host to copy."""
        # Case paths come from the tree under test: quoted for the guest's shell.
        if self.is_program:
            return " ".join(shlex.quote(a) for a in (self.guest_path, *self.program_args))
        keep = "KTO_KEEP_LOGS=1 " if keep_logs else ""
        return f"{keep}/kto/run-case {shlex.quote(self.guest_path)} {shlex.quote(logdir)}"


def available_suites(tree_path: pathlib.Path) -> list[str]:
    test_d = tree_path / FTRACE_SELFTESTS / "test.d"
    names = sorted(p.name for p in test_d.iterdir() if p.is_dir()) if test_d.is_dir() else []
    return names + [ALL_FTRACE, "tcscripts", *PROGRAM_SUITES]


def list_cases(tree_path: pathlib.Path, suites: list[str], syscall_prefix: str = "sys_",
               tcscripts: pathlib.Path = TCSCRIPTS_DIR) -> list[CaseSpec]:
    """syscall_prefix: the arch's (arches.yaml), for the programs that probe syscalls;
    tcscripts: the directory of the tcscripts suite's .tc cases."""
    valid = available_suites(tree_path)
    unknown = [s for s in suites if s not in valid]
    if unknown:
        raise OrchestratorError(
            f"Unknown suite {', '.join(unknown)}; valid suites for this tree are: {', '.join(valid)}.")
    test_d = tree_path / FTRACE_SELFTESTS / "test.d"
    cases: list[CaseSpec] = []
    seen: set[str] = set()
    for suite in suites:
        if suite in PROGRAM_SUITES:
            binary = f"{guestprog.GUEST_BIN}/{suite}"
            specs = [CaseSpec(f"{suite}/{name}", suite, binary, ("--prefix", syscall_prefix, name))
                     for name in guestprog.program_cases(suite)]
        elif suite == "tcscripts":
            files = sorted(tcscripts.rglob("*.tc")) if tcscripts.is_dir() else []
            specs = [CaseSpec(f"tcscripts/{f.relative_to(tcscripts)}", "tcscripts",
                              f"{GUEST_TCSCRIPTS}/{f.relative_to(tcscripts)}") for f in files]
        else:
            top = test_d if suite == ALL_FTRACE else test_d / suite
            # ftracetest's own order: find | sort on the path.
            files = sorted(top.rglob("*.tc"), key=lambda p: str(p))
            specs = [CaseSpec(str(f.relative_to(test_d)), str(f.relative_to(test_d)).split("/")[0],
                              f"{GUEST_FTRACE}/test.d/{f.relative_to(test_d)}") for f in files]
        for spec in specs:
            try:
                spec.id.encode("utf-8")
            except UnicodeEncodeError:
                # A name of bytes that are no UTF-8 (a series can add one): no record, page or
                # mail could hold it, and the guest's shell would be sent something else.
                raise OrchestratorError(
                    f"The case file {spec.id.encode('utf-8', 'surrogateescape')!a} has a name that is not UTF-8; "
                    "rename it.") from None
            if _UNSENDABLE.search(spec.id):
                # The host sends one command per line: a newline in a name would split it.
                raise OrchestratorError(
                    f"The case file {spec.id!r} has a newline or a control character in its name; "
                    "rename it (the guest's commands are sent one per line).")
            if spec.id not in seen:
                seen.add(spec.id)
                cases.append(spec)
    return cases


def select_cases(cases: list[CaseSpec], globs: tuple[str, ...], suites: list[str]) -> list[CaseSpec]:
    """CASES= / --case: the cases whose id (kprobe/kprobe_args_user.tc) or file name
    (kprobe_args_user.tc) matches one of the shell globs, in the suites' order. A glob
    that matches nothing is a typo, said before anything is built."""
    def matches(spec: CaseSpec, glob: str) -> bool:
        return fnmatch.fnmatchcase(spec.id, glob) or fnmatch.fnmatchcase(spec.id.rsplit("/", 1)[-1], glob)
    unmatched = [g for g in globs if not any(matches(c, g) for c in cases)]
    if unmatched:
        example = cases[0].id if cases else "kprobe/kprobe_args_user.tc"
        raise OrchestratorError(
            f"--case {', '.join(unmatched)} matches no case of the suites {', '.join(suites)} "
            f"({len(cases)} cases); give a glob of case ids such as '{example}' or "
            f"'{example.split('/')[0]}/*', or the suite that holds it with --suite.")
    return [c for c in cases if any(matches(c, g) for g in globs)]


def not_built(spec: CaseSpec, program_errors: dict[str, str]) -> CaseResult | None:
    """ERROR for a case of a suite whose guest program did not build (the image has no
    binary to run), with the compiler's error; None when the case can run."""
    missing = [program_errors[p] for p in guestprog.SUITE_PROGRAMS.get(spec.suite, ())
               if p in program_errors] if spec.is_program else []
    if not missing:
        return None
    return CaseResult(spec.id, spec.suite, spec.id, "ERROR", 0.0, reason=f"not run: {missing[0]}")


class _RebootFailed(Exception):
    """The guest restarted for this case did not reach its shell."""


class GuestRunner:
    """Runs cases in a guest, restarting the guest after it dies or hangs."""

    def __init__(self, start_guest: Callable[[], Transport], detector: SplatDetector,
                 progress: Progress, case_timeout: float, boot_timeout: float,
                 halt_command: str | None, max_restarts: int = 5,
                 case_logs_dir: pathlib.Path | None = None, leak_scan: bool = False,
                 name_pc: Callable[[int], str | None] | None = None):
        """case_logs_dir: where a non-passing case's full log dir goes when the session can
        copy files back (SSH); its path relative to the dir's parent (the run dir) is
        recorded on the case. leak_scan: the kernel has kmemleak (the debug config): scan
        for leaks after the last case (scan_for_leaks). name_pc: a kernel address as
        func+0xoff/0xsize (the run's vmlinux), for where a hung kernel's CPUs were."""
        self.leak_scan = leak_scan
        self.name_pc = name_pc
        self.start_guest = start_guest
        self.detector = detector
        self.progress = progress
        self.case_timeout = case_timeout
        self.boot_timeout = boot_timeout
        self.halt_command = halt_command
        # Restarts in a row without a case the guest survived: a kernel that dies in every
        # case would otherwise be booted once per case (a minute each on riscv64).
        self.max_restarts = max_restarts
        self.restarts_in_a_row = 0
        self.case_logs_dir = case_logs_dir
        self.session: Transport | None = None
        self.boots = 0
        self.boot_seconds: list[float] = []
        # Each boot's guest uptime at its shell (None from images without it): restarts
        # are the kernel's time too, not the orchestrator's.
        self.guest_boot_seconds: list[float | None] = []
        # /proc/sys/kernel/tainted as last seen: the first boot's, then each case's end
        # (a restart does not clear it: the mask says what this run's kernel went through).
        self.taint: int | None = None
        # The running guest's mask, as its boot or its last case left it: what a case
        # raised is judged against it (a restarted guest starts from its own boot's).
        self.guest_taint: int | None = None

    def boot(self) -> Transport:
        """Start a guest and wait for /init's READY line; GuestDied/GuestTimeout on failure."""
        self.boots += 1
        session = self.start_guest()
        self.session = session
        t0 = time.monotonic()
        session.start()
        session.wait_ready(self.boot_timeout)
        self.boot_seconds.append(round(time.monotonic() - t0, 2))
        self.guest_boot_seconds.append(session.guest_boot_seconds)
        if self.taint is None:
            self.taint = session.boot_taint
        self.guest_taint = session.boot_taint
        return session

    def scan_for_leaks(self) -> LeakScan | None:
        """kmemleak's scan on the running guest after its last case; each leak it prints
        becomes a splat of kind "leak" with no case. None when there was nothing to scan:
        no kmemleak in the kernel, or no guest running (a guest restarted after a crash and
        never used again is not booted for it). Only the last boot's allocations are seen."""
        if not self.leak_scan or self.session is None:
            return None
        session = self.session
        self.detector.current_case = None
        self.progress.status("kmemleak: scanning the guest's memory for leaks")
        t0 = time.monotonic()
        error = None
        try:
            res = session.run(LEAK_SCAN_COMMAND, self.case_timeout, label="kmemleak scan")
            if res.exit_status != 0:
                said = " ".join(line.strip() for line in res.output if line.strip())[-200:]
                error = (f"the scan command exited {res.exit_status}"
                         + (f" ({said})" if said else "") + ": kmemleak may have disabled itself (see console.log)")
            ended = time.monotonic()
            while time.monotonic() - max(ended, self.detector.last_line_at) < LEAK_REPORT_QUIET_SECONDS \
                    and time.monotonic() - ended < LEAK_REPORT_MAX_WAIT_SECONDS:
                session.poll(0.25)
        except (GuestTimeout, GuestDied, TransportLost) as exc:
            error = f"the guest did not finish the scan: {exc}"
            self.kill()
        self.detector.flush()
        self.progress.clear()
        return LeakScan(round(time.monotonic() - t0, 2), error)

    def stop(self) -> None:
        if self.session is not None:
            self.session.halt(self.halt_command)
            self.session = None

    def kill(self) -> None:
        if self.session is not None:
            self.session.kill()
            self.session = None

    def _hang_reported(self, splats_before: int) -> bool:
        return self.detector.open_kind() in WEDGING_KINDS or any(
            s.kind in WEDGING_KINDS for s in self.detector.splats[splats_before:])

    def run_case(self, spec: CaseSpec, index: int, total: int, logdir: str) -> list[CaseResult]:
        """Run one case; always returns results (ERROR on a hang or a dead guest)."""
        self.detector.current_case = spec.id
        splats_before = len(self.detector.splats)
        t0 = time.monotonic()
        hang_seen_at: list[float] = []

        def hook(deadline: float) -> float:
            """Called while waiting: refresh the status line, shorten the wait after a stall."""
            if not hang_seen_at and self._hang_reported(splats_before):
                hang_seen_at.append(time.monotonic())
            self.progress.status(f"[{index}/{total}] {spec.id}  {fmt_duration(time.monotonic() - t0)}")
            if not hang_seen_at:
                return deadline
            quiet_until = max(hang_seen_at[0], self.detector.last_line_at) + WEDGED_QUIET_SECONDS
            return min(deadline, hang_seen_at[0] + WEDGED_GRACE_SECONDS, quiet_until)

        self.progress.status(f"[{index}/{total}] {spec.id}")
        session = self.session
        results: list[CaseResult]
        raised = ""   # the taint bits the case raised, named
        try:
            if session is None and self.boots and self.restarts_in_a_row >= self.max_restarts:
                return [CaseResult(spec.id, spec.suite, spec.id, "ERROR", 0.0, reason=(
                    f"not run: the guest died or was restarted in each of the last {self.restarts_in_a_row} "
                    "cases; no more restarts in this run (see those cases' splats)"))]
            if session is None:
                try:
                    session = self.boot()
                except (GuestTimeout, GuestDied, TransportLost) as exc:
                    raise _RebootFailed() from exc
            keep_logs = session.keeps_case_logs and self.case_logs_dir is not None
            res = session.run(spec.guest_command(logdir, keep_logs), self.case_timeout, hook, label=spec.id)
            results = self._from_output(spec, res.output, res.seconds, res.exit_status)
            if keep_logs and not spec.is_program:
                self._fetch_logs(session, spec, index, logdir, results)
            raised = taint.judge(self.guest_taint, res.taint, spec.id)
            self.guest_taint = res.taint
            for r in results:
                r.taint_after = res.taint
                if res.guest_seconds is not None:
                    r.guest_seconds = round(res.guest_seconds / len(results), 2)
        except _RebootFailed:
            results = [self._guest_error(spec, t0, "the guest did not boot again after the previous case"
                                         if self.boots > 1 else "this guest did not boot")]
        except GuestHung as exc:
            cpus = [(cpu, pc, self.name_pc(pc) if self.name_pc else None)
                    for cpu, pc in qmp.program_counters(exc.registers)]
            hang = self.detector.hang(exc.silent_seconds, exc.asked, cpus, exc.registers)
            where = sorted({name.split("+")[0] for _, _, name in cpus if name})
            results = [self._guest_error(
                spec, t0, f"{hang.title}" + (f", CPUs in {', '.join(where)}" if where else "")
                          + f": nothing for {exc.silent_seconds:g}s, none of {exc.asked} sysrq(s) over the "
                            "serial line answered (guest restarted)")]
        except GuestTimeout as exc:
            said = ktap.parse(exc.partial).results
            before = f"the test reported {said[-1].status}, then " if said else ""
            results = [self._guest_error(
                spec, t0, f"{before}no end of the case after {fmt_duration(time.monotonic() - t0)}: "
                          "the guest hangs or the case runs too long (guest restarted)")]
        except GuestDied:
            results = [self._guest_error(spec, t0, "the guest died during the case (QEMU exited; "
                                                   "a kernel panic ends it) and was restarted")]
        except TransportLost as exc:
            results = [self._guest_error(spec, t0, f"{exc} (SSH transport; guest restarted)")]
        self.detector.flush()
        new_splats = self.detector.splats[splats_before:]
        if new_splats:
            titles = "; ".join(s.title for s in new_splats)
            for r in results:
                r.splats = [s.copy() for s in new_splats]
                if r.status not in FAILING:
                    r.test_status = r.status
                    r.status = "FAIL"
                    r.reason = f"the test said {r.test_status}, but the kernel splatted: {titles}"
                elif cause := next((s for s in new_splats if s.kind in POISONING_KINDS | WEDGING_KINDS), None):
                    # A case that died with the kernel: the splat is its cause, what the
                    # harness saw next ("no end of the case after 32s") only follows.
                    r.reason = f"{cause.title} (then: {r.reason})"
        for r in results:
            # A WARN with no splat on the console (printk turned off by the case, a
            # console that lost it) still taints: the mask is the backstop.
            if raised and r.status not in FAILING:
                r.test_status, r.status = r.status, "FAIL"
                r.reason = f"the test said {r.test_status}, but the kernel's taint gained {raised}"
        self.detector.current_case = None
        for r in results:
            r.boot = self.boots
            r.taint_before = self.taint
            if r.taint_after is not None:
                self.taint = r.taint_after
        if self.session is not None and any(s.kind in POISONING_KINDS for s in new_splats):
            # An ftrace bug disables ftrace for the rest of the boot, an Oops may leave
            # locks held: the next case gets a fresh kernel, not this one's aftermath.
            self.stop()
        self.restarts_in_a_row = self.restarts_in_a_row + 1 if self.session is None else 0
        return results

    def _fetch_logs(self, session: Transport, spec: CaseSpec, index: int, logdir: str,
                    results: list[CaseResult]) -> None:
        """Copy a non-passing case's whole log dir back (run-case kept it), then clear it.
        A failed copy costs the copy, never the case's result."""
        assert self.case_logs_dir is not None
        if all(r.status == "PASS" for r in results):
            return
        dest = self.case_logs_dir / f"{index:03d}-{spec.id.replace('/', '_')}"
        try:
            session.fetch_dir(logdir, dest)
            session.run(f"rm -rf {shlex.quote(logdir)}", 60)
        except (OSError, GuestTimeout, TransportLost) as exc:
            self.progress.say(f"  could not copy the logs of {spec.id} back: {exc}")
            return
        for r in results:
            if r.status != "PASS":
                r.guest_logs = str(dest.relative_to(self.case_logs_dir.parent))

    def _guest_error(self, spec: CaseSpec, t0: float, reason: str) -> CaseResult:
        """ERROR for a case the guest did not finish, with the console tail; the guest is
        killed so the next case boots a fresh one."""
        tail = self.session.tail(60) if self.session else []
        self.kill()
        return CaseResult(spec.id, spec.suite, spec.id, "ERROR", round(time.monotonic() - t0, 2),
                          reason=reason, log="\n".join(tail))

    def _from_output(self, spec: CaseSpec, output: list[str], seconds: float,
                     exit_status: int) -> list[CaseResult]:
        if spec.is_program:
            return _program_results(spec, output, seconds, exit_status)
        doc = ktap.parse(output)
        verdicts = ktap.ftracetest_verdicts(output)
        if not doc.results:
            return [CaseResult(spec.id, spec.suite, spec.id, "ERROR", round(seconds, 2),
                               reason="ftracetest printed no KTAP result", log="\n".join(output))]
        log = caselog.excerpt(caselog.from_output(output))
        out = []
        for r in doc.results:
            status = verdicts.get(r.number, r.status)
            if not r.description and status == "PASS":
                status = "ERROR"   # "ok 1" and nothing more: a line cut short is no pass
            case_id, desc = CaseId.from_result(spec.id, r.description)
            reason = ""
            if status != "PASS":
                reason = caselog.reason(log, status)
            out.append(CaseResult(str(case_id), spec.suite, desc,
                                  status, round(seconds / len(doc.results), 2), reason=reason,
                                  log=log if status != "PASS" else ""))
        disagreement = _tc_disagreement(doc, [r.status for r in out], exit_status)
        if disagreement:
            for r in out:
                if r.status not in FAILING:
                    r.test_status, r.status = r.status, "ERROR"
                    r.reason = disagreement
                    r.log = "\n".join(output)[-4000:]
                else:
                    r.reason = f"{r.reason} ({disagreement})" if r.reason else disagreement
        return out


def _tc_disagreement(doc: ktap.KtapDocument, statuses: list[str], exit_status: int) -> str:
    """What ftracetest's KTAP results, its plan and its exit status (run-case's) disagree
    on, or "": a .tc case is PASS only when the three agree. ftracetest exits 1 after a
    FAIL or an undefined result, else 0 (UNRESOLVED and UNSUPPORTED count as 0 without
    its --fail-* options, which run-case does not give)."""
    problems = []
    if doc.plan is None:
        problems.append(f"ftracetest printed {len(doc.results)} result(s) and no plan line")
    elif doc.plan != len(doc.results):
        problems.append(f"ftracetest planned {doc.plan} result(s) and printed {len(doc.results)}")
    failed = any(s in ("FAIL", "ERROR") for s in statuses)
    if exit_status != (1 if failed else 0):
        problems.append(f"it exited {exit_status}{_signal_name(exit_status)} after "
                        + ("a failing result" if failed else "no failing result"))
    return "; ".join(problems)


def _program_results(spec: CaseSpec, output: list[str], seconds: float,
                     exit_status: int) -> list[CaseResult]:
    """One KTAP result from a guest program: its output is the log; the reason is the
    SKIP directive's text, else its first 'wrong:' line, else its last '#' line."""
    doc = ktap.parse(output)
    log = "\n".join(output)
    if len(doc.results) != 1:
        return [CaseResult(spec.id, spec.suite, spec.id, "ERROR", round(seconds, 2),
                           reason=f"{spec.guest_path} exited {exit_status}{_signal_name(exit_status)} "
                                  f"after {len(doc.results)} KTAP results (1 expected)"
                                  + (f": {output[-1].strip()[:120]}" if output else ""),
                           log=log)]
    (r,) = doc.results
    if r.description != spec.id:
        # A line cut short (a guest that died mid-write) must not count as this case's pass.
        return [CaseResult(spec.id, spec.suite, spec.id, "ERROR", round(seconds, 2),
                           reason=f"{spec.guest_path} printed a result for '{r.description}', "
                                  f"not for {spec.id}", log=log)]
    if (r.status == "FAIL") != (exit_status != 0):
        # The programs exit 0 after "ok" and 1 after "not ok": a line the console garbled
        # (a lost "not ") must not read as a pass.
        said = "not ok" if r.status == "FAIL" else "ok"
        return [CaseResult(spec.id, spec.suite, spec.id, "ERROR", round(seconds, 2),
                           reason=f"{spec.guest_path} printed {said} but exited {exit_status}"
                                  f"{_signal_name(exit_status)}", log=log)]
    notes = [l[1:].strip() for l in r.diagnostics if l.startswith("#")]
    reason = ""
    if r.status != "PASS":
        wrong = [n for n in notes if n.startswith("wrong: ")]
        reason = r.reason or (wrong[0] if wrong else notes[-1] if notes else r.status)
    return [CaseResult(spec.id, spec.suite, r.description, r.status, round(seconds, 2),
                       reason=reason[:200], log=log if r.status != "PASS" else "")]


def _signal_name(exit_status: int) -> str:
    """The shell reports death by signal N as 128 + N."""
    if exit_status > 128:
        try:
            return f" ({signal.Signals(exit_status - 128).name})"
        except ValueError:
            pass
    return ""
