"""Guests for cases run as pytest items (plugin.py), and the run directory they
share.

Every process that runs items (the one pytest process, or each pytest-xdist worker)
owns one guest per arch: booted at its first item of that arch, reused for the next,
restarted after a crash by GuestRunner as in a `make test` run. What each process
measures goes to its own part file (results/<run-id>/parts/<worker>.jsonl, one JSON
object per line, appended as it happens) and its own console-<worker>.log; the process
that started the session merges the parts into the run's results.json, junit.xml,
report.html and summary.txt at the end, the same files a `make test` run writes.
"""
from __future__ import annotations

import os
import pathlib
from typing import IO

import msgspec

from ..results import report, summary
from .. import cache
from ..errors import ExitCode
from ..guest_setup import PreparedGuest, first_boot, guest_runner, prepare_guest, run_case, transport_record
from ..pipeline import verdict_of
from ..run_inputs import TestOptions
from ..progress import Progress
from ..model import Accel, CaseResult, PytestRun, Splat, Taint, Transport, Worker
from ..results.recorder import Recorder, failures_after_poisoning_splat, guest_order
from ..kernel.source import KernelTree
from ..suites.case_id import test_of
from ..suites.splats import SplatDetector
from ..suites.runner import CaseSpec

PARTS = "parts"
SELECTED = "selected-{worker}.json"


def write_selected(run_dir: pathlib.Path, worker: str, case_ids: list[str]) -> None:
    """The cases this process's pytest session selected for the arch (after -k, -m,
    deselection): what the merge expects a result for. Each worker collects the same."""
    cache.atomic_write_json(run_dir / SELECTED.format(worker=worker), case_ids)


def read_selected(run_dir: pathlib.Path) -> set[str]:
    out: set[str] = set()
    for path in run_dir.glob(SELECTED.format(worker="*")):
        ids = cache.read_json(path)
        if isinstance(ids, list):
            out.update(i for i in ids if isinstance(i, str))
    return out


# -- a worker's part file: one line per event, typed (the JSON carries its "kind") ------
class _Line(msgspec.Struct, tag_field="kind", kw_only=True):
    pass


class BootLine(_Line, tag="boot"):
    worker: str
    release: str | None
    seconds_to_shell: float
    guest_uptime_at_shell: float | None
    taint: int | None
    accel: Accel


class BootFailedLine(_Line, tag="boot_failed"):
    worker: str
    error: str
    console_tail: list[str]


class CaseLine(_Line, tag="case"):
    index: int
    case: CaseResult


class SplatLine(_Line, tag="splat"):
    splat: Splat


class EndLine(_Line, tag="end"):
    worker: str
    boots: int
    taint: int | None
    restart_seconds: list[float]
    transport: Transport
    leak_scan_seconds: float | None = None   # its kmemleak scan after the last case (runner.LeakScan)
    leak_scan_error: str | None = None


PartLine = BootLine | BootFailedLine | CaseLine | SplatLine | EndLine
_LINE = msgspec.json.Decoder(PartLine)
_ENCODE = msgspec.json.Encoder()


def worker_id() -> str:
    """pytest-xdist's name for this process (gw0, gw1...), or "main" without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


class PartWriter:
    """This process's part of a run: one JSON object per line, flushed per line, so a
    worker that dies keeps what it finished."""

    def __init__(self, run_dir: pathlib.Path, worker: str):
        self.path = run_dir / PARTS / f"{worker}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] = open(self.path, "a")

    def write(self, line: PartLine) -> None:
        self._file.write(_ENCODE.encode(line).decode() + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class ArchGuest:
    """One arch's guest in this process."""

    def __init__(self, opts: TestOptions, tree: KernelTree, run_dir: pathlib.Path, worker: str,
                 part: PartWriter, progress: Progress):
        self.worker = worker
        self.part = part
        # Found made by the controller (under the same lock): its run recorded them.
        # Each xdist worker runs one guest at a time: the workers are the guests at once.
        self.prepared: PreparedGuest = prepare_guest(opts, tree, progress,
                                                     guests=int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
        self.console_log = open(run_dir / f"console-{worker}.log", "ab")
        self.detector = SplatDetector()
        self.sessions: list = []
        self.transport = opts.transport
        self.runner = guest_runner(opts, self.prepared, self.console_log, self.detector, self.sessions,
                                   progress, run_dir / "caselogs")
        self._splats_written = 0
        self.cases_run = 0

    def boot(self) -> None:
        """The first boot (GuestRunner restarts later ones itself); raises GuestTimeout,
        GuestDied or TransportLost with the console tail in self.tail()."""
        at_shell = first_boot(self.runner)
        self.part.write(BootLine(worker=self.worker, release=at_shell.release,
                                 seconds_to_shell=at_shell.seconds_to_shell,
                                 guest_uptime_at_shell=at_shell.uptime_at_shell, taint=at_shell.taint,
                                 accel=Accel(name=self.prepared.accel.name, reason=self.prepared.accel.reason)))

    def tail(self) -> list[str]:
        return self.runner.session.tail(40) if self.runner.session else []

    def run(self, spec: CaseSpec, index: int, total: int) -> list[CaseResult]:
        results = run_case(self.runner, spec, index, total, self.prepared.image.program_errors)
        for r in results:
            r.worker = self.worker
            self.part.write(CaseLine(index=index, case=r))
        self.cases_run += 1
        self._write_splats()
        return results

    def _write_splats(self) -> None:
        for s in self.detector.splats[self._splats_written:]:
            self.part.write(SplatLine(splat=s))
        self._splats_written = len(self.detector.splats)

    def close(self) -> None:
        leak_scan = self.runner.scan_for_leaks()
        self.runner.stop()
        self.detector.flush()
        self._write_splats()
        self.part.write(EndLine(worker=self.worker, boots=self.runner.boots, taint=self.runner.taint,
                                restart_seconds=self.runner.boot_seconds[1:],
                                transport=transport_record(self.transport, self.sessions),
                                leak_scan_seconds=leak_scan.seconds if leak_scan else None,
                                leak_scan_error=leak_scan.error if leak_scan else None))
        self.console_log.close()


def read_parts(run_dir: pathlib.Path) -> list[PartLine]:
    records = []
    for path in sorted((run_dir / PARTS).glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            try:
                records.append(_LINE.decode(line))
            except msgspec.DecodeError:
                pass   # the last line of a worker killed mid-write
    return records


def merge(recorder: Recorder, order: list[str], items_seconds: float,
          stopped: bool = False) -> tuple[str, int]:
    """Fill the run's results.json from the parts (cases in the suites' order, whichever
    worker ran them); then junit.xml, report.html, summary.txt. The summary's text and the
    exit code. items_seconds: the wall time of pytest's run of the items (the suites
    stage: every worker's guests at once). stopped: pytest ended before running every
    item (-x, Ctrl-C). The run is complete only when every selected case has a result."""
    records = read_parts(recorder.dir)
    boots = [r for r in records if isinstance(r, BootLine)]
    ends = [r for r in records if isinstance(r, EndLine)]
    rank = {case_id: i for i, case_id in enumerate(order)}
    cases = sorted((r for r in records if isinstance(r, CaseLine)),
                   key=lambda r: (rank.get(test_of(r.case.id), len(rank)), r.index))
    recorder.set("cases", [r.case for r in cases])
    recorder.set("splats", [r.splat for r in records if isinstance(r, SplatLine)])
    if boots:
        first = boots[0]
        recorder.set("kernel", msgspec.structs.replace(recorder.record.kernel, release=first.release))
        recorder.set("accel", first.accel)
        end_taint = 0
        for e in ends:   # taint is a bit mask: any guest's flag counts
            end_taint |= e.taint or 0
        recorder.set("taint", Taint(boot=first.taint, end=end_taint if ends else None))
        recorder.stage_finished("boot", seconds=first.seconds_to_shell, seconds_to_shell=first.seconds_to_shell,
                                guest_uptime_at_shell=first.guest_uptime_at_shell)
    if cases:
        recorder.stage_finished("suites", seconds=items_seconds, boots=sum(e.boots for e in ends),
                                restart_seconds=[s for e in ends for s in e.restart_seconds],
                                leak_scan_seconds=[e.leak_scan_seconds for e in ends
                                                   if e.leak_scan_seconds is not None] or None,
                                leak_scan_errors=[e.leak_scan_error for e in ends if e.leak_scan_error] or None)
    workers = sorted({r.worker for r in boots} | {r.worker for r in ends}, key=guest_order)
    recorder.set("pytest", PytestRun(workers=[
        Worker(worker=w, cases=sum(1 for r in cases if r.case.worker == w),
               boots=sum(e.boots for e in ends if e.worker == w), console_log=f"console-{w}.log")
        for w in workers]))
    transports = [e.transport for e in ends]
    if transports:
        recorder.set("transport", Transport.of_sessions(transports[0].name, transports))
    _join_console_logs(recorder.dir, workers)
    recorder.set("first_cause", failures_after_poisoning_splat(recorder.record))
    verdict, code = verdict_of(recorder.cases, len(recorder.record.splats))
    failed_boots = [r for r in records if isinstance(r, BootFailedLine)]
    if failed_boots and not boots:   # no worker's guest booted: the run failed at boot
        failed = failed_boots[0]
        recorder.stage_finished("boot", "failed", error=failed.error, console_tail=failed.console_tail)
        error = failed.error
        recorder.finish("failed", f"{error[:1].upper()}{error[1:]}; the console tail is in results.json "
                                  f"and {recorder.dir / 'console.log'}.", int(ExitCode.BOOT_FAILED))
    else:
        expected = read_selected(recorder.dir) or set(order)
        missing = sorted(expected - {test_of(r.case.id) for r in cases})
        if missing or stopped or not cases:
            # A killed worker, -x or Ctrl-C: what ran is kept, but the run is not complete,
            # so `report --fail-on-regression` cannot pass it.
            code = ExitCode.INTERRUPTED if stopped else ExitCode.INFRA_ERROR
            recorder.finish("incomplete", f"{len(missing)} of {len(expected)} selected case(s) have no result"
                            + (" (pytest stopped early)" if stopped else " (a worker died?)")
                            + (f": {', '.join(missing[:5])}" if missing else ""), int(code))
        else:
            recorder.finish("complete", verdict, int(code))
    report.write_run_reports(recorder)
    return summary.render(recorder.record, str(recorder.dir)), int(code)


def _join_console_logs(run_dir: pathlib.Path, workers: list[str]) -> None:
    """console.log, as a `make test` run has: each worker's guest console in turn."""
    with open(run_dir / "console.log", "wb") as out:
        for w in workers:
            path = run_dir / f"console-{w}.log"
            if path.exists():
                out.write(f"==== orchestrator: the console of worker {w}'s guests ====\n".encode())
                out.write(path.read_bytes())
