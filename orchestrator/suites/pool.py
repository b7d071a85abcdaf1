"""Several guests of one kernel and image sharing one run's cases (`--guests N`).

Each guest is a GuestRunner of its own (its QEMU, console log and splat detector) in a
thread of its own, taking the next case from one queue: a case that runs long (a
300 s timeout) holds one guest while the others go on with the rest. Under TCG a guest
spends most of a case waiting on its console, so two guests on two cores finish the
default suites in about 0.6x of one (the pytest plugin's measurement, and `make bench`'s
`guests` row). What a case reports does not depend on which guest ran it: each case is
its own ftracetest invocation on a guest that has run only whole cases before it.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import queue
import threading
import time
from typing import Callable

from ..progress import Progress
from ..model import CaseResult
from .runner import CaseSpec, GuestRunner

# What a guest costs the host beyond its -m: QEMU's own code, TCG's translation cache.
QEMU_OVERHEAD_MB = 256
# A user's --guests is checked against this, so a typo (--guests 100) is bad input.
MAX_GUESTS = 16


def memory_mb(text: str) -> int:
    """QEMU's -m value ("1G", "512M", "2048") in MiB."""
    text = text.strip().upper()
    scale = {"G": 1024, "M": 1, "T": 1024 * 1024}
    if text and text[-1] in scale:
        return int(float(text[:-1]) * scale[text[-1]])
    return int(text)


def host_memory_available_mb() -> int | None:
    try:
        for line in pathlib.Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def default_guests(guest_memory: str, cases: int) -> tuple[int, str]:
    """How many guests a run starts when the user did not say: one per host core, as
    far as the host's available memory holds them, never more than there are cases.
    Returns the number and why, for the run's record."""
    cores = len(os.sched_getaffinity(0))
    need = memory_mb(guest_memory) + QEMU_OVERHEAD_MB
    available = host_memory_available_mb()
    by_memory = available // need if available is not None else cores
    n = max(1, min(cores, by_memory, cases, MAX_GUESTS))
    why = f"{cores} cores, {available if available is not None else '?'} MiB available, {need} MiB per guest"
    return n, why


class Board:
    """One status line for several guests (or arches, series/lanes.py): what each is
    doing, side by side, each under its label (g1, g2... unless given)."""

    def __init__(self, progress: Progress, guests: int, labels: list[str] | None = None):
        self.progress = progress
        self.slots = [""] * guests
        self.labels = labels or [f"g{i + 1}" for i in range(guests)]
        self.lock = threading.Lock()

    def status(self, slot: int, text: str) -> None:
        with self.lock:
            self.slots[slot] = text
            self.progress.status(" | ".join(f"{label} {s}" for label, s in zip(self.labels, self.slots) if s))

    def say(self, text: str) -> None:
        with self.lock:
            self.progress.say(text)

    def log(self, text: str) -> None:
        with self.lock:
            self.progress.log(text)


class GuestProgress:
    """The Progress a guest's runner writes to: its slot of the shared status line."""

    def __init__(self, board: Board, slot: int):
        self.board, self.slot = board, slot

    def status(self, text: str) -> None:
        self.board.status(self.slot, text)

    def say(self, text: str) -> None:
        self.board.say(text)

    def log(self, text: str) -> None:
        self.board.log(text)

    def clear(self) -> None:
        pass


def console_name(guest: int) -> str:
    """Guest 1 writes console.log; guest k its own file until the run joins them."""
    return "console.log" if guest == 1 else f"console-g{guest}.log"


def join_console_logs(run_dir: pathlib.Path, guests: int) -> None:
    """Each further guest's console appended to console.log under a header (the report
    and `grep` read one file), its own file then removed."""
    if guests < 2:
        return
    with open(run_dir / "console.log", "ab") as out:
        for k in range(2, guests + 1):
            path = run_dir / console_name(k)
            if path.exists():
                out.write(f"\n==== orchestrator: the console of guest g{k} ====\n".encode())
                out.write(path.read_bytes())
                path.unlink()


@dataclasses.dataclass
class Job:
    index: int        # 1-based, in the suites' order: the case's place in results.json
    spec: CaseSpec


def run_pool(runners: list[GuestRunner], jobs: list[Job],
             run_one: Callable[[GuestRunner, Job], list[CaseResult]],
             record: Callable[[GuestRunner, Job, list[CaseResult]], None]) -> None:
    """Run every job on whichever runner is free; `record` gets each case's results as it
    ends (serialized: one at a time). A failure to record (a full disk) stops every guest
    and is raised here; so is Ctrl-C, after the guests are killed: a case cut short by
    the kill is not recorded as if the kernel had done it."""
    todo: queue.Queue[Job] = queue.Queue()
    for job in jobs:
        todo.put(job)
    stop = threading.Event()
    lock = threading.Lock()
    errors: list[BaseException] = []

    def work(runner: GuestRunner) -> None:
        while not stop.is_set():
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            try:
                results = run_one(runner, job)
                with lock:
                    if stop.is_set():
                        return
                    record(runner, job, results)
            except BaseException as exc:   # handed to the main thread, which raises it
                with lock:
                    if not stop.is_set():
                        errors.append(exc)
                        stop.set()
                return

    threads = [threading.Thread(target=work, args=(r,), name=f"guest-{i + 1}", daemon=True)
               for i, r in enumerate(runners)]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.5)   # a bounded join: Ctrl-C reaches the main thread
            if errors:
                break
    except BaseException:
        stop.set()
        _kill_all(runners, threads)
        raise
    if errors:
        _kill_all(runners, threads)
        raise errors[0]


def _kill_all(runners: list[GuestRunner], threads: list[threading.Thread]) -> None:
    for r in runners:
        r.kill()
    deadline = time.monotonic() + 10
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
