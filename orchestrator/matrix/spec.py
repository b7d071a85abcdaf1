"""The matrix spec (matrix.yaml): arches x kernels, each cell one `orchestrator test` run.

`make matrix` runs the cells in sequence on one machine; `make workflow` turns the same
file into a CI workflow with one job per cell (workflow.py).
"""
from __future__ import annotations

import dataclasses
import pathlib
import re

import yaml

from ..arches import get_arch
from ..errors import OrchestratorError
from ..project import BOOT_TIMEOUT_SECONDS, CASE_TIMEOUT_SECONDS, seconds_problem

_TOP_KEYS = {"arches", "kernels", "suites", "kconfig", "case_timeout", "boot_timeout"}
_KERNEL_KEYS = {"name", "tree", "series", "base", "compare", "suites", "kconfig",
                "case_timeout", "boot_timeout"}


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
    kconfig: tuple[str, ...]
    case_timeout: float
    boot_timeout: float

    @property
    def job_id(self) -> str:
        """A CI job id: letters, digits, '-' and '_' only."""
        return re.sub(r"[^A-Za-z0-9_-]", "_", self.name)


def _list(value, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v for v in value.replace(",", " ").split() if v)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise OrchestratorError(f"{where} must be a list of names; write it as [a, b] in the matrix spec.")


def _seconds(value, where: str, default: float) -> float:
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
    unknown = set(spec) - _TOP_KEYS
    if unknown:
        raise OrchestratorError(f"The matrix spec {origin} has unknown key(s) {', '.join(sorted(unknown))}; "
                                f"known keys: {', '.join(sorted(_TOP_KEYS))}.")
    arches = _list(spec.get("arches"), f"{origin}: arches")
    if not arches:
        raise OrchestratorError(f"The matrix spec {origin} names no arches; add e.g. arches: [x86_64].")
    for a in arches:
        get_arch(a)   # unknown arch: one sentence, exit 2
    kernels = spec.get("kernels") or [{"name": "debian-6.12"}]
    if not isinstance(kernels, list):
        raise OrchestratorError(f"{origin}: kernels must be a list of {{name: ..., tree: ...}} entries.")
    cells: list[Cell] = []
    for i, k in enumerate(kernels, 1):
        where = f"{origin}: kernels[{i}]"
        if not isinstance(k, dict) or not isinstance(k.get("name"), str) or not k["name"]:
            raise OrchestratorError(f"{where} needs a name (name: fprobe-v4).")
        unknown = set(k) - _KERNEL_KEYS
        if unknown:
            raise OrchestratorError(f"{where} has unknown key(s) {', '.join(sorted(unknown))}; "
                                    f"known keys: {', '.join(sorted(_KERNEL_KEYS))}.")
        suites = _list(k.get("suites", spec.get("suites")), f"{where}: suites")
        for arch in arches:
            cells.append(Cell(
                name=f"{arch}-{k['name']}", arch=arch, kernel_name=k["name"],
                tree=None if k.get("tree") in (None, "default") else str(k["tree"]),
                series=k.get("series"), base=k.get("base"), compare=bool(k.get("compare", False)),
                suites=suites, kconfig=_list(k.get("kconfig", spec.get("kconfig")), f"{where}: kconfig"),
                case_timeout=_seconds(k.get("case_timeout", spec.get("case_timeout")), f"{where}: case_timeout", CASE_TIMEOUT_SECONDS),
                boot_timeout=_seconds(k.get("boot_timeout", spec.get("boot_timeout")), f"{where}: boot_timeout", BOOT_TIMEOUT_SECONDS)))
    names = [c.name for c in cells]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise OrchestratorError(f"{origin}: cell name(s) {', '.join(dupes)} appear twice; give each kernel its own name.")
    return cells


def load(path: pathlib.Path) -> list[Cell]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise OrchestratorError(f"Cannot read the matrix spec {path} ({exc.strerror}); give --spec a YAML file.") from exc
    return parse(text, str(path))


def select(cells: list[Cell], names: list[str]) -> list[Cell]:
    if not names:
        return cells
    known = {c.name: c for c in cells}
    missing = [n for n in names if n not in known]
    if missing:
        raise OrchestratorError(f"No cell named {', '.join(missing)} in the matrix spec; cells: {', '.join(known)}.")
    return [known[n] for n in names]
