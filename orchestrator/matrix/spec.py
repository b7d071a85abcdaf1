"""The matrix spec (matrix.yaml): arches x kernels, each cell one `orchestrator test` run.

`make matrix` runs the cells in sequence on one machine; `make workflow` turns the same
file into a CI workflow with one job per cell (workflow.py).
"""
from __future__ import annotations

import dataclasses
import pathlib
import re

import msgspec
import yaml

from ..arches import get_arch
from ..errors import OrchestratorError
from ..project import BOOT_TIMEOUT_SECONDS, CASE_TIMEOUT_SECONDS, seconds_problem

Names = list[str] | str | None   # [a, b], or "a b" / "a,b"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
Seconds = float | None          # checked by seconds_problem (finite, above 0)


class _Kernel(msgspec.Struct, forbid_unknown_fields=True):
    """One entry of `kernels:` as written; every value's type is checked on the way in."""
    name: str
    tree: str | None = None
    arches: Names = None     # this kernel's arches, when not every arch of the spec
    series: str | None = None
    base: str | None = None
    compare: bool = False
    suites: Names = None
    cases: Names = None
    kconfig: Names = None
    case_timeout: Seconds = None
    boot_timeout: Seconds = None


class _Spec(msgspec.Struct, forbid_unknown_fields=True):
    arches: Names = None
    kernels: list[_Kernel] | None = None
    suites: Names = None
    cases: Names = None
    kconfig: Names = None
    case_timeout: Seconds = None
    boot_timeout: Seconds = None


def _spec_problem(exc: msgspec.ValidationError, origin: str) -> str:
    """msgspec's "Expected `str | null`, got `int` - at `$.kernels[0].series`" as one
    sentence with the spec's own path (entries counted from 1, as a reader counts them)."""
    what, _, where = str(exc).partition(" - at `")
    what = what[:1].lower() + what[1:]
    if where.startswith("key`"):
        return f"The matrix spec {origin} has a key that is not a name ({what}); write each key as a word."
    where = re.sub(r"\[(\d+)\]", lambda m: f"[{int(m.group(1)) + 1}]", where.rstrip("`").lstrip("$."))
    if what.startswith("object missing required field"):
        return f"{origin}: {where} needs a name (name: fprobe-v4)."
    if what.startswith("object contains unknown field"):
        known = _Kernel.__struct_fields__ if where.startswith("kernels") else _Spec.__struct_fields__
        field = what.rsplit(" ", 1)[-1]
        return f"{origin}: {where or 'the top level'} has an unknown key {field}; known keys: {', '.join(known)}."
    return (f"{origin}: {where}: {what}; fix that value in the matrix spec (quote one such as 6.12 "
            "that YAML would read as a number).")


@dataclasses.dataclass(frozen=True)
class Cell:
    name: str                      # "<arch>-<kernel name>", unique in the spec
    arch: str
    kernel_name: str
    tree: str | None               # None: Debian's linux-source-6.12
    series: str | None
    base: str | None
    compare: bool
    suites: tuple[str, ...]
    cases: tuple[str, ...]             # globs of case ids (CASES=); empty: every case
    kconfig: tuple[str, ...]
    case_timeout: float
    boot_timeout: float

    @property
    def job_id(self) -> str:
        """A CI job id: letters, digits, '-' and '_' only."""
        return re.sub(r"[^A-Za-z0-9_-]", "_", self.name)


def _list(value: Names) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v for v in value.replace(",", " ").split() if v)
    return tuple(value)


def _seconds(value: Seconds, where: str, default: float) -> float:
    if value is None:
        return default
    problem = seconds_problem(value)
    if problem:
        raise OrchestratorError(f"{where} is '{value}', {problem}; fix the matrix spec.")
    return float(value)


def parse(text: str, origin: str = "matrix.yaml") -> list[Cell]:
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise OrchestratorError(f"The matrix spec {origin} is not valid YAML ({str(exc).splitlines()[0]}); "
                                "fix its syntax.") from exc
    if not isinstance(spec, dict):
        raise OrchestratorError(f"The matrix spec {origin} must be a mapping with arches and kernels.")
    try:
        parsed = msgspec.convert(spec, _Spec)
    except msgspec.ValidationError as exc:
        raise OrchestratorError(_spec_problem(exc, origin)) from exc
    except UnicodeEncodeError as exc:   # an escape such as "\uD800": YAML reads it, no text holds it
        raise OrchestratorError(f"The matrix spec {origin} holds a lone surrogate escape ({exc.object[exc.start:exc.end]!a}), "
                                "which is no character; fix that string.") from exc
    arches = _list(parsed.arches)
    if not arches:
        raise OrchestratorError(f"The matrix spec {origin} names no arches; add e.g. arches: [x86_64].")
    for a in arches:
        get_arch(a)   # unknown arch: one sentence, exit 2
    kernels = parsed.kernels or [_Kernel(name="debian-6.12")]
    cells: list[Cell] = []
    for i, k in enumerate(kernels, 1):
        where = f"{origin}: kernels[{i}]"
        if not k.name:
            raise OrchestratorError(f"{where} needs a name (name: fprobe-v4).")
        if not _NAME.fullmatch(k.name):
            # The name goes into CI job ids, step names and command lines (workflow.py):
            # a word, never shell or ${{ }} expression syntax.
            raise OrchestratorError(f"{where}: the name {k.name!a} is not a word of letters, digits and . _ + -; "
                                    "rename it (e.g. fprobe-v4).")
        suites = _list(k.suites if k.suites is not None else parsed.suites)
        cases = _list(k.cases if k.cases is not None else parsed.cases)
        kconfig = _list(k.kconfig if k.kconfig is not None else parsed.kconfig)
        case_timeout = k.case_timeout if k.case_timeout is not None else parsed.case_timeout
        boot_timeout = k.boot_timeout if k.boot_timeout is not None else parsed.boot_timeout
        kernel_arches = _list(k.arches) or arches
        for a in kernel_arches:
            get_arch(a)
        for arch in kernel_arches:
            cells.append(Cell(
                name=f"{arch}-{k.name}", arch=arch, kernel_name=k.name,
                tree=None if k.tree in (None, "default") else k.tree,
                series=k.series, base=k.base, compare=k.compare, suites=suites, cases=cases, kconfig=kconfig,
                case_timeout=_seconds(case_timeout, f"{where}: case_timeout", CASE_TIMEOUT_SECONDS),
                boot_timeout=_seconds(boot_timeout, f"{where}: boot_timeout", BOOT_TIMEOUT_SECONDS)))
    names = [c.name for c in cells]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise OrchestratorError(f"{origin}: cell name(s) {', '.join(dupes)} appear twice; give each kernel its own name.")
    by_job: dict[str, str] = {}
    for c in cells:
        if c.job_id in by_job:
            raise OrchestratorError(f"{origin}: cells {by_job[c.job_id]} and {c.name} would be one CI job "
                                    f"({c.job_id}); rename one kernel so they differ in more than . and _.")
        by_job[c.job_id] = c.name
    return cells


def load(path: pathlib.Path) -> list[Cell]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise OrchestratorError(f"Cannot read the matrix spec {path} ({exc.strerror}); give --spec a YAML file.") from exc
    except UnicodeDecodeError as exc:
        raise OrchestratorError(f"The matrix spec {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
                                f"offset {exc.start}); save it as UTF-8.") from exc
    return parse(text, str(path))


def select(cells: list[Cell], names: list[str]) -> list[Cell]:
    if not names:
        return cells
    known = {c.name: c for c in cells}
    missing = [n for n in names if n not in known]
    if missing:
        raise OrchestratorError(f"No cell named {', '.join(missing)} in the matrix spec; cells: {', '.join(known)}.")
    return [known[n] for n in names]
