"""The arches of one series side by side (`ARCH=all SERIES=... COMPARE=1`).

Each arch's run_series runs in a thread of its own, in a worktree of its own
(patches.worktree_for), so a bisect or a base try on one arch checks out nothing under
another's build. They share the machine through two locks: one kernel build at a time
(guest_setup.one_build_at_a_time, the file lock every run and worker takes) and one arch's
guests at a time (pipeline.GUESTS_OF_ONE_ARCH_AT_A_TIME). While one arch builds, the guests
of an arch already built run: the cores work through each arch's waits (a guest's console,
a build's single-threaded link) instead of idling.

What the user sees: one status line with each arch's slot, each arch's lines led by its
name. Ctrl-C or SIGTERM reaches the main thread only: it raises the same interruption in
every arch's thread (where each run ends as a one-arch run does, recorded incomplete, no
QEMU or make left), waits for them, then goes on as before.
"""
from __future__ import annotations

import ctypes
import dataclasses
import pathlib
import threading
from typing import Callable

from ..errors import OrchestratorError
from ..progress import Progress
from ..suites.pool import Board, GuestProgress


@dataclasses.dataclass
class Lane:
    """One arch's part: its exit code and comparison dir, or the error that ended it."""
    arch: str
    code: int | None = None
    compare_dir: pathlib.Path | None = None
    error: OrchestratorError | None = None
    crash: BaseException | None = None   # anything else (a bug, an interruption)


class LaneProgress(GuestProgress):
    """An arch's Progress: its slot of the shared status line (as a guest's), its lines led
    by its name."""

    def __init__(self, board: Board, slot: int, arch: str):
        super().__init__(board, slot)
        self.arch = arch

    def _led(self, text: str) -> str:
        return text if text.startswith(f"{self.arch}:") else f"{self.arch}: {text}"

    def say(self, text: str) -> None:
        super().say(self._led(text))

    def log(self, text: str) -> None:
        super().log(self._led(text))


class LanesInterrupted(KeyboardInterrupt):
    """Raised in an arch's thread when the run is stopped (Ctrl-C, SIGTERM)."""


def _interrupt(thread: threading.Thread) -> None:
    """Raise LanesInterrupted in `thread` at its next Python instruction: a thread waiting on
    a child (make's output, QEMU's console, run_tree's one-second waits) hears it within a
    second or so."""
    if thread.ident is not None and thread.is_alive():
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(LanesInterrupted))


def _stop_all(threads: list[threading.Thread]) -> None:
    for t in threads:
        _interrupt(t)
    for t in threads:
        t.join()


def run_side_by_side(arches: list[str], one: Callable[[str, Progress], tuple[int, pathlib.Path | None]],
                     progress: Progress, fatal: Callable[[OrchestratorError], bool]) -> list[Lane]:
    """one(arch, progress) for every arch at once, a thread each; the lanes in the order
    given. An error `fatal` calls the same on every arch (bad input, a series that does
    not apply) stops the others and is raised here, as is a bug; any other error is that
    arch's result."""
    board = Board(progress, len(arches), labels=arches)
    lanes = [Lane(a) for a in arches]
    stop = threading.Event()

    def work(slot: int) -> None:
        lane = lanes[slot]
        try:
            try:
                lane.code, lane.compare_dir = one(lane.arch, LaneProgress(board, slot, lane.arch))
            except OrchestratorError as exc:
                lane.error = exc
                if fatal(exc):
                    stop.set()
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, raised there
                lane.crash = exc
                stop.set()
        except LanesInterrupted:   # told to stop just as it was ending: nothing left to stop
            pass
        board.status(slot, "done")   # not the last case it ran, while the others go on

    threads = [threading.Thread(target=work, args=(k,), name=f"lane-{a}") for k, a in enumerate(arches)]
    for t in threads:
        t.start()
    try:
        while any(t.is_alive() for t in threads):
            if stop.wait(0.5):
                break
    except BaseException:
        _stop_all(threads)
        raise
    if stop.is_set():
        _stop_all(threads)
    for t in threads:
        t.join()
    progress.clear()
    for lane in lanes:
        if lane.crash is not None and not isinstance(lane.crash, LanesInterrupted):
            raise lane.crash
    for lane in lanes:
        if lane.error is not None and fatal(lane.error):
            raise lane.error
    return lanes
