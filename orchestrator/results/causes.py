"""Why a case did not pass, when that is known and is not the code under test: a limit
of the tree (with the Kconfig symbol), of this project's config, of the emulator, of the
guest image, of the selftest itself, or a kernel bug (its splat).

The known causes are data (orchestrator/data/causes.yaml), each found in a real run and
matched by case, status, arch, kernel version and the case's own reason. A case with a
splat is explained by the splat unless the table knows better. Whatever is neither is
"unexplained": the reports count those apart, they are what a reader looks at first.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import functools
import re
from importlib import resources

import yaml

from ..model import CaseResult, Cause, CauseKind, RunRecord
from ..suites.status import PASSED

# Package data, read the way the arch table is (arches.py): found in an installed package too.
CAUSES_FILE = resources.files("orchestrator").joinpath("data/causes.yaml")
# What each kind of cause (model.CauseKind) means, in the order the reports list them.
KINDS: dict[CauseKind, str] = {
    "tree": "a limit of the kernel tree",
    "config": "this project's kernel config",
    "emulator": "the emulator (QEMU)",
    "image": "the guest image",
    "test": "the selftest itself",
    "kernel": "a kernel bug",
    "unsettled": "seen and studied, cause not settled",
}


@dataclasses.dataclass(frozen=True)
class KnownCause:
    cases: tuple[str, ...]           # fnmatch patterns on the case id
    kind: str                        # a key of KINDS
    why: str
    statuses: tuple[str, ...] = ()   # empty: any status that is not a pass
    arches: tuple[str, ...] = ()     # empty: every arch
    kernels: tuple[str, ...] = ()    # version prefixes ("6.12" matches 6.12.117); empty: any
    reason: re.Pattern | None = None  # searched in the case's reason
    splat: re.Pattern | None = None   # searched in a splat's title: the splat is this cause's

    def applies_to(self, arch: str, version: str) -> bool:
        return (not self.arches or arch in self.arches) and \
            (not self.kernels or any(version == k or version.startswith(k + ".") for k in self.kernels))

    def matches(self, case: CaseResult, arch: str, version: str) -> bool:
        return (any(fnmatch.fnmatchcase(case.id, p) for p in self.cases)
                and (not self.statuses or case.status in self.statuses)
                and self.applies_to(arch, version)
                and (self.reason is None or bool(self.reason.search(case.reason))))


def _listed(entry: dict, key: str) -> tuple[str, ...]:
    value = entry.get(key) or ()
    return (value,) if isinstance(value, str) else tuple(str(v) for v in value)


def parse(entries: list[dict]) -> tuple[KnownCause, ...]:
    """The table from causes.yaml's list; ValueError naming the entry that is wrong."""
    out = []
    for n, e in enumerate(entries, 1):
        if not isinstance(e, dict) or not e.get("case") or not e.get("why") or e.get("kind") not in KINDS:
            raise ValueError(f"{CAUSES_FILE.name} entry {n} needs case, why and a kind of {', '.join(KINDS)}")
        out.append(KnownCause(_listed(e, "case"), e["kind"], " ".join(str(e["why"]).split()),
                              _listed(e, "status"), _listed(e, "arch"), _listed(e, "kernel"),
                              re.compile(e["reason"]) if e.get("reason") else None,
                              re.compile(e["splat"]) if e.get("splat") else None))
    return tuple(out)


@functools.lru_cache(maxsize=1)
def table() -> tuple[KnownCause, ...]:
    return parse(yaml.safe_load(CAUSES_FILE.read_text()) or [])


def of(case: CaseResult, run: RunRecord) -> Cause | None:
    """The cause of a case of `run` that did not pass, or None when it passed or nothing
    explains it."""
    if case.status in PASSED:
        return None
    for known in table():
        if known.matches(case, run.arch, run.kernel.version):
            return Cause(kind=known.kind, why=known.why)
    if case.splats:
        first = case.splats[0]
        return Cause(kind="kernel", why=f"{first.kind}: {first.title}".strip())
    return None


def known_splat(title: str, arch: str, version: str) -> Cause | None:
    """The cause of a splat the table names (its `splat:` pattern, arch and kernel), or
    None: a splat seen with a series and never on its base is the series' unless it is
    known noise of this kind (results/confirm.py)."""
    for known in table():
        if known.splat is not None and known.splat.search(title) and known.applies_to(arch, version):
            return Cause(kind=known.kind, why=known.why)
    return None


def unexplained(run: RunRecord) -> list[CaseResult]:
    """The run's cases that did not pass and that nothing explains."""
    return [c for c in run.cases if c.status not in PASSED and of(c, run) is None]


def line(cause: Cause) -> str:
    return f"{cause.kind}: {cause.why}"
