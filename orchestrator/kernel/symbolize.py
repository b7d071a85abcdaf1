"""A splat's stack frames (`func+0x52/0x120`) decoded to file:line, with the inlined chain,
against the run's own vmlinux: what the tree's scripts/faddr2line does, with the same
tools (the arch's nm and addr2line, or LLVM's), once per run for all frames.

Paths come back relative to the tree (the build saw it through the tree view, or at its
own path): they name the lines a series changed (series/attribute.py) and what a reader
opens. Frames in modules are left as they are (their .ko is not at hand here).
"""
from __future__ import annotations

import bisect
import dataclasses
import os
import pathlib
import re
import subprocess

from .. import hosttools
from ..arches import Arch
from ..model import Frame, Inlined, Splat

# func+0xoff/0xsize, then an optional [module]; the frame is what the kernel printed.
_FRAME = re.compile(r"(?<![\w.])(?P<func>[A-Za-z_.$][\w.$]*)\+0x(?P<off>[0-9a-f]+)/0x(?P<size>[0-9a-f]+)"
                    r"(?:\s+\[(?P<module>[\w-]+)\])?")
# The faulting instruction itself (not a return address): decoded at its own address.
_EXACT = re.compile(r"^\s*(?:RIP: [0-9a-f]{4}:|pc : |epc : |ERA: |era: |Krnl PSW|WARNING: |kernel BUG)")
# x86's "? func+0x.." frames are guesses the unwinder found on the stack.
_GUESS = re.compile(r"^\s*\? ")
MAX_FRAMES = 16
TOOL_TIMEOUT_SECONDS = 120


@dataclasses.dataclass(frozen=True)
class RawFrame:
    frame: str          # as printed: "trace_kprobe_create_cb+0xc92/0x1000"
    func: str
    offset: int
    size: int
    module: str | None
    exact: bool         # the faulting pc, not a return address


def frames_of(lines: list[str]) -> list[RawFrame]:
    """The report's frames in order, each once; unreliable guesses left out."""
    out: list[RawFrame] = []
    seen: set[str] = set()
    for line in lines:
        if _GUESS.match(line):
            continue
        for m in _FRAME.finditer(line):
            text = m.group(0).strip()
            if text in seen:
                continue
            seen.add(text)
            out.append(RawFrame(text, m.group("func"), int(m.group("off"), 16), int(m.group("size"), 16),
                                m.group("module"), bool(_EXACT.match(line))))
    return out[:MAX_FRAMES]


def tools_for(arch: Arch) -> tuple[str, str]:
    """(nm, addr2line) for the arch's toolchain."""
    if arch.llvm is not None:
        suffix = arch.llvm if arch.llvm.startswith("-") else ""
        return f"llvm-nm{suffix}", f"llvm-addr2line{suffix}"
    return f"{arch.cross_compile}nm", f"{arch.cross_compile}addr2line"


def _relative(path: str, roots: list[pathlib.Path]) -> str | None:
    """A path addr2line printed, relative to the tree: under one of the roots the build
    saw the tree at, else the longest tail of it that exists in the first root."""
    norm = os.path.normpath(path)
    for root in roots:
        try:
            return str(pathlib.Path(norm).relative_to(root))
        except ValueError:
            continue
    parts = pathlib.Path(norm).parts
    for k in range(1, len(parts)):
        tail = pathlib.Path(*parts[k:])
        if roots and (roots[0] / tail).is_file():
            return str(tail)
    return None


class Symbolizer:
    def __init__(self, vmlinux: pathlib.Path, arch: Arch, roots: list[pathlib.Path]):
        """roots: where the build saw the tree (the tree view's source path, the tree's
        own path): DWARF names files under them."""
        self.vmlinux = vmlinux
        self.nm, self.addr2line = tools_for(arch)
        self.roots = roots
        self._symbols: dict[str, list[tuple[int, int]]] | None = None
        self._by_address: list[tuple[int, int, str]] | None = None

    def _run(self, argv: list[str]) -> str:
        try:
            out = hosttools.run_tree(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT_SECONDS)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout if out.returncode == 0 else ""

    def symbols(self) -> dict[str, list[tuple[int, int]]]:
        """name -> [(address, size)] of vmlinux's text symbols (a static name can repeat)."""
        if self._symbols is None:
            table: dict[str, list[tuple[int, int]]] = {}
            for line in self._run([self.nm, "-S", "--defined-only", str(self.vmlinux)]).splitlines():
                parts = line.split()
                if len(parts) == 4 and parts[2] in "tTwW":
                    table.setdefault(parts[3], []).append((int(parts[0], 16), int(parts[1], 16)))
            self._symbols = table
        return self._symbols

    def name(self, address: int) -> str | None:
        """A kernel address as a frame names it (`func+0x1c/0x40`), or None when no text
        symbol of vmlinux covers it (a module's, or a kernel built with KASLR)."""
        if self._by_address is None:
            self._by_address = sorted((a, size, name) for name, places in self.symbols().items()
                                      for a, size in places if size)
        k = bisect.bisect_right(self._by_address, (address, float("inf"), "")) - 1
        if k < 0:
            return None
        start, size, name = self._by_address[k]
        return f"{name}+{address - start:#x}/{size:#x}" if address < start + size else None

    def _address(self, f: RawFrame) -> int | None:
        candidates = self.symbols().get(f.func) or []
        exact = [a for a, size in candidates if size == f.size]
        pick = exact or [a for a, _ in candidates]
        if len(pick) != 1:
            return None   # unknown, or several of that name and size: no guess
        # A return address points after its call: the call's line is one byte back.
        return pick[0] + f.offset - (0 if f.exact else 1)

    def decode(self, frames: list[RawFrame]) -> list[Frame]:
        """Each frame with its function, file, line and the chain it is inlined in, the
        innermost (inlined) place first, as addr2line -i prints it; a frame that could not
        be decoded keeps only its text."""
        wanted = [(f, None if f.module else self._address(f)) for f in frames]
        addrs = [a for _, a in wanted if a is not None]
        places: dict[int, list[dict]] = {}
        if addrs:
            text = self._run([self.addr2line, "-a", "-f", "-i", "-e", str(self.vmlinux),
                              *(f"{a:#x}" for a in addrs)])
            places = self._parse(text)
        out = []
        for f, addr in wanted:
            chain = places.get(addr, []) if addr is not None else []
            inner = chain[0] if chain else Inlined()
            out.append(Frame(frame=f.frame, module=f.module or None, function=inner.function, file=inner.file,
                             line=inner.line, inlined_by=chain[1:]))
        return out

    def _parse(self, text: str) -> dict[int, list[Inlined]]:
        """addr2line -a -f -i output: an address line, then function / file:line pairs."""
        out: dict[int, list[Inlined]] = {}
        current: list[Inlined] | None = None
        lines = text.splitlines()
        k = 0
        while k < len(lines):
            line = lines[k].strip()
            if re.fullmatch(r"0x[0-9a-f]+", line):
                current = out.setdefault(int(line, 16), [])
                k += 1
                continue
            if current is not None and k + 1 < len(lines):
                where = lines[k + 1].strip().split(" (discriminator")[0]
                path, _, number = where.rpartition(":")
                rel = _relative(path, self.roots) if path and path != "??" else None
                if rel and number.isdigit() and int(number) > 0:
                    current.append(Inlined(function=line, file=rel, line=int(number)))
                k += 2
                continue
            k += 1
        return out


def decode_splats(splats: list[Splat], vmlinux: pathlib.Path, arch: Arch, roots: list[pathlib.Path]) -> None:
    """Set each splat's frames, in place; a splat whose frames could not be read keeps
    none. Does nothing without a vmlinux."""
    if not splats or not vmlinux.is_file():
        return
    sym = Symbolizer(vmlinux, arch, roots)
    for splat in splats:
        raw = frames_of(splat.lines)
        if raw:
            splat.frames = sym.decode(raw)
