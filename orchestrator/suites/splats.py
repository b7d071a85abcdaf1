"""Console splat detection: WARN, BUG, Oops, panic, ftrace bug, lockdep, RCU stalls...

The catalogue is data (as syzkaller's pkg/report and BPF CI's deny list are): each
entry is a kind, a regex for the line that starts or titles a report, and whether
that line is only a header (the title comes from a later line). Only kernel lines
(those carrying a printk timestamp) are matched, so a test that merely prints
"BUG:" is not a splat.
"""
from __future__ import annotations

import re
import time

from ..model import Location, Splat, SplatChange
from ..vm.printk import kernel_text

# (kind, pattern, is_header)
CATALOGUE: tuple[tuple[str, str, bool], ...] = (
    ("warning", r"------------\[ cut here \]------------", True),
    ("ftrace-bug", r"------------\[ ftrace bug \]------------", True),
    ("warning", r"WARNING: CPU: \d+ PID: \d+ at ", False),
    ("warning", r"WARNING: .* at .*\+0x", False),
    ("kasan", r"BUG: KASAN: ", False),
    ("stall", r"watchdog: BUG: soft lockup", False),
    ("bug", r"kernel BUG at ", False),
    ("bug", r"BUG: ", False),
    ("oops", r"\bOops\b", False),
    ("oops", r"Unable to handle kernel ", False),
    ("oops", r"Internal error: ", False),
    # s390's die(): the program check's name, its code and the die counter, no "Oops".
    ("oops", r"\b[a-z][a-z -]+: [0-9a-f]{4} ilc:\d \[#\d+\]", False),
    ("panic", r"Kernel panic - not syncing", False),
    ("ftrace-bug", r"ftrace failed to modify", False),
    ("ftrace-bug", r"ftrace faulted on", False),
    ("rethook", r"(?:rethook|kretprobe): Return address not found", False),
    ("stall", r"rcu: INFO: .*stall", False),
    ("stall", r"rcu: INFO: ", False),
    ("stall", r"INFO: task .* blocked for more than", False),
    ("lockdep", r"possible recursive locking detected", False),
    ("lockdep", r"possible circular locking dependency", False),
    ("lockdep", r"suspicious RCU usage", False),
    ("ubsan", r"UBSAN: ", False),
    # kmemleak's verbose report of its scan (the debug kernel's scan after the suites).
    ("leak", r"^kmemleak: unreferenced object", False),
)
_COMPILED = tuple((kind, re.compile(pat), header) for kind, pat, header in CATALOGUE)
# A line with no printk timestamp opens a report only when it starts with one of these
# headers, whose shape no test's output has by chance: a case that turns printk.time off
# (/sys/module/printk/parameters/time) must not hide a WARN, and a test that merely prints
# "BUG:" must not be one. The report then takes the untimestamped lines that follow.
_UNTIMED_HEADER = re.compile(
    r"^(?:------------\[ (?:cut here|ftrace bug) \]------------$|WARNING: CPU: \d+ PID: \d+ at |"
    r"WARNING: [\w./+-]+:\d+ at \S+\+0x|kernel BUG at [\w./+-]+:\d+!|Oops: .*\[#\d+\]|"
    r"BUG: (?:unable to handle|kernel NULL pointer|KASAN: |sleeping function|scheduling while atomic|"
    r"soft lockup)|Kernel panic - not syncing: |rcu: INFO: |WARNING: (?:possible (?:recursive|circular) "
    r"locking|suspicious RCU usage)|kmemleak: unreferenced object )")
_END = re.compile(r"---\[ end (trace|Kernel panic)")
# A report without an end marker (stalls, ftrace bug) is closed by this much kernel time.
_QUIET_GAP = 5.0
_MAX_LINES = 120
# A leak report is one object's (or one backtrace's) lines, all prefixed "kmemleak: ";
# the next object, the scan's count line or any other message ends it.
_LEAK_LINE = re.compile(r"^kmemleak: (?!unreferenced object|\d+ new suspected memory leak)")
_LEAK_FRAME = re.compile(r"^kmemleak:\s+(?P<func>[A-Za-z_.$][\w.$]*)\+0x[0-9a-f]+/0x[0-9a-f]+")
_LEAK_SIZE = re.compile(r"\(size (\d+)\)")
_LEAK_MORE = re.compile(r"^kmemleak:\s+\.\.\. and (\d+) more object\(s\) with the same backtrace")
# The allocator's own frames at the top of a leak's backtrace: the leak is named by the
# first frame below them, the code that allocated (as syzkaller names its leak reports).
_ALLOCATOR = re.compile(
    r"^(?:kmemleak_\w+|__?kmalloc\w*|kmalloc\w*|__?kzalloc\w*|kcalloc\w*|__?krealloc\w*|__?kvmalloc\w*|"
    r"kvzalloc\w*|kvrealloc\w*|__?kmem_cache_alloc\w*|kmem_cache_zalloc|__do_kmalloc\w*|slab_\w+|"
    r"__?slab_alloc\w*|___slab_alloc|alloc_slab\w*|__?vmalloc\w*|vzalloc\w*|__?alloc_pages\w*|"
    r"alloc_pages\w*|pcpu_alloc\w*|__?alloc_percpu\w*|kstrn?dup\w*|kmemdup\w*|kvasprintf\w*|"
    r"kasprintf\w*|kasan_\w+|__kasan_\w+|trace_kmalloc\w*)$")


def _is_allocator(function: str) -> bool:
    """`kstrdup`, `__kmalloc_noprof.cold`...: a frame of the allocator itself."""
    return bool(_ALLOCATOR.match(function.split(".")[0]))


def leak_title(lines: list[str]) -> str | None:
    """"kmemleak: memory leak in <the allocating function> (<the allocator>, size N)" from
    a leak report's backtrace, e.g. "... in alloc_trace_kprobe (kstrdup, size 16)": the
    names stay the same from one build to the next (base, series), where offsets do not,
    and two leaks of one function through different allocators stay two. None when the
    backtrace has no frame below the allocator's."""
    size = next((m.group(1) for m in map(_LEAK_SIZE.search, lines[:1]) if m), None)
    allocator = None
    for line in lines:
        m = _LEAK_FRAME.match(line)
        if m is None:
            continue
        func = m.group("func")
        if _is_allocator(func):
            allocator = func
            continue
        what = ", ".join(x for x in (allocator, f"size {size}" if size else None) if x)
        return f"kmemleak: memory leak in {func}" + (f" ({what})" if what else "")
    return None


# Kinds after which the kernel is not trustworthy for the rest of the boot: an ftrace
# bug disables ftrace, an Oops may leave locks held. Later failures are reported as
# possibly following from the first of them.
POISONING_KINDS = frozenset({"ftrace-bug", "oops", "bug", "panic", "kasan"})

# A kernel that stopped answering: no kernel message, the host's own report (hang()).
HANG_TITLE = "kernel hung: no console output, no answer to sysrq"

# Kinds after which a guest rarely finishes the case (a task died holding locks, or
# a CPU is stuck): the case gets only a short grace after them instead of its timeout.
WEDGING_KINDS = frozenset({"stall", "oops", "bug", "panic"})


# Where the kernel says a report comes from, in its own words: a BUG's or a WARN's
# file:line (6.x: "WARNING: CPU: 0 PID: 1 at kernel/x.c:12 f+0x1/0x2"; 7.x:
# "WARNING: kernel/x.c:12 at f+0x1/0x2, CPU#0: ..."). No vmlinux needed.
_LOCATIONS = (re.compile(r"kernel BUG at (?P<file>[\w./+-]+\.[chS]):(?P<line>\d+)"),
              re.compile(r"WARNING: (?:CPU: \d+ PID: \d+ )?at (?P<file>[\w./+-]+\.[chS]):(?P<line>\d+)"),
              re.compile(r"WARNING: (?P<file>[\w./+-]+\.[chS]):(?P<line>\d+) at "),
              # DEBUG_ATOMIC_SLEEP: the might_sleep() caller's line.
              re.compile(r"BUG: sleeping function called from invalid context at "
                         r"(?P<file>[\w./+-]+\.[chS]):(?P<line>\d+)"))


def location_of(lines: list[str]) -> Location | None:
    """{"file", "line"} from the first line of a report that names its source line."""
    for line in lines:
        for rx in _LOCATIONS:
            m = rx.search(line)
            if m:
                return Location(file=m.group("file"), line=int(m.group("line")))
    return None



def classify(message: str) -> tuple[str, bool] | None:
    for kind, rx, header in _COMPILED:
        if rx.search(message):
            return kind, header
    return None


def normalize_title(title: str) -> str:
    """Titles that differ only in numbers (PID, CPU, jiffies, addresses) are the same report."""
    return re.sub(r"0x[0-9a-f]+|\d+", "N", title)


# Decoded frames shown where a splat is told (summary, report, reply): the top of the
# stack is where the report comes from; below a few frames it is the syscall path.
SHOWN_FRAMES = 4


def decoded_lines(splat: Splat | SplatChange, limit: int = SHOWN_FRAMES) -> list[str]:
    """The top decoded frames as decode_stacktrace.sh prints them: `func+0x6f0/0xf80
    (kernel/trace/trace_kprobe.c:938)`, an inlined function on its own line under the
    frame it was inlined into. Frames that could not be decoded are left out; a leak's
    top is the allocator's own frames, left out too (they are in console.log)."""
    frames = splat.frames or []
    if splat.kind == "leak":
        below = [k for k, f in enumerate(frames) if not _is_allocator(f.frame.split("+")[0])]
        frames = frames[below[0]:] if below else frames
    out: list[str] = []
    for f in [f for f in frames if f.file and f.line][:limit]:
        name = f.function if f.function and not f.frame.startswith(f.function + "+") else None
        out.append(f"{f.frame}" + (f" [{f.module}]" if f.module else "")
                   + (f" {name}" if name else "") + f" ({f.file}:{f.line})")
        out += [f"  inlined in {i.function or '?'} ({i.file}:{i.line})" for i in f.inlined_by if i.file and i.line]
    return out


def splat_key(s: Splat | SplatChange) -> str:
    """What makes two recorded splats (a run's, or a comparison's entries) the same report."""
    return f"{s.kind}: {normalize_title(s.title)}"


def grouped(splats: list[Splat]) -> list[tuple[Splat, int, list[str]]]:
    """The same report seen more than once (a WARN_ONCE on each of two guests) as one: its
    first splat, how many times it was printed, and the cases it came during, in order."""
    groups: dict[str, list[Splat]] = {}
    for s in splats:
        groups.setdefault(splat_key(s), []).append(s)
    return [(same[0], sum(s.count for s in same), list(dict.fromkeys(s.case or no_case_label(s.kind) for s in same)))
            for same in groups.values()]


def no_case_label(kind: str) -> str:
    """What a splat with no case came during."""
    return "the leak scan after the suites" if kind == "leak" else "boot/idle"


class SplatDetector:
    def __init__(self) -> None:
        self.splats: list[Splat] = []
        self.current_case: str | None = None
        self._open: Splat | None = None
        self._titled = False
        self._line_no = 0
        # When the console last printed anything (time.monotonic()): after an Oops, a guest
        # that has gone quiet is not finishing its case.
        self.last_line_at = time.monotonic()

    def feed(self, line: str) -> None:
        self._line_no += 1
        self.last_line_at = time.monotonic()
        parsed = kernel_text(line)
        if parsed is None:
            parsed = self._untimed(line)
            if parsed is None:
                return
        ts, msg = parsed
        if self._open is not None and ts is not None and self._open.kernel_time is not None \
                and ts - self._open.kernel_time > _QUIET_GAP:
            self._close()
        if self._open is not None and self._open.kind == "leak" and not _LEAK_LINE.match(msg):
            self._close()
        hit = classify(msg)
        if self._open is None:
            if hit is None:
                return
            kind, header = hit
            self._open = Splat(kind, msg.strip(), ts, self._line_no, [msg], self.current_case)
            self._titled = not header
            return
        self._open.lines.append(msg)
        if hit is not None and not self._titled:
            kind, header = hit
            if not header:
                self._open.title = msg.strip()
                # An ftrace bug header stays an ftrace bug whatever WARN follows it.
                if self._open.kind == "warning":
                    self._open.kind = kind
                self._titled = True
        if _END.search(msg) or len(self._open.lines) >= _MAX_LINES:
            self._close()

    def _untimed(self, line: str) -> tuple[None, str] | None:
        """A line without a timestamp, as a kernel line: when it starts a report with one
        of _UNTIMED_HEADER's headers, or goes on with a report such a line started."""
        text = line.strip()
        if self._open is not None and self._open.kernel_time is None:
            if text.startswith("KTO:"):   # the host's own markers: the report is over
                self._close()
                return None
            return None, text
        if self._open is None and _UNTIMED_HEADER.match(text):
            return None, text
        return None

    def _close(self) -> None:
        splat, self._open = self._open, None
        if splat is None:
            return
        splat.location = location_of(splat.lines)
        if splat.kind == "leak":
            splat.title = leak_title(splat.lines) or splat.title
            # 7.x prints one object per backtrace, then how many more share it.
            more = next((m for m in map(_LEAK_MORE.search, splat.lines[-1:]) if m), None)
            splat.count += int(more.group(1)) if more else 0
        for prev in self.splats:
            if prev.case == splat.case and normalize_title(prev.title) == normalize_title(splat.title):
                prev.count += splat.count
                return
        self.splats.append(splat)

    def flush(self) -> None:
        """Close a report still being collected (end of a case, end of the run)."""
        self._close()

    def hang(self, silent_seconds: float, asked: int, cpus: list[tuple[int, int, str | None]],
             registers: str) -> Splat:
        """A kernel that stopped answering (vm.transport.GuestHung) as a report of kind
        "hang": it printed nothing, so the report is the host's, one line per vCPU with
        where it was (cpu, pc, the pc as func+0xoff/0xsize when vmlinux names it), then
        QEMU's dump of the registers. Its title is the same for every hang: where a hung
        kernel's CPUs happen to be differs from run to run (riscv64's multiple_kprobes.tc:
        a spinlock one time, stop_machine another), and the same hang in the base and the
        series must be the same report, not a new one; its lines and frames say where."""
        self._close()
        lines = [f"no console output for {silent_seconds:g}s, no answer to {asked} sysrq(s) over the serial line"]
        lines += [f"pc : {name or f'{pc:#x}'} (CPU#{cpu})" for cpu, pc, name in cpus]
        lines += ["QEMU's info registers -a:", *registers.strip().splitlines()]
        splat = Splat("hang", HANG_TITLE, None, max(1, self._line_no), lines[:_MAX_LINES], self.current_case)
        self.splats.append(splat)
        return splat

    def open_kind(self) -> str | None:
        return self._open.kind if self._open else None
