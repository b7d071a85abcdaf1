"""The kernel's taint mask, judged per case: a case during which the guest's
/proc/sys/kernel/tainted gains a bit fails with the bit named (`W (WARN: a WARN fired)`),
whether or not its splat reached the console. The flag names and the bits allowed to
rise, each with its reason, are data (orchestrator/data/taint.yaml)."""
from __future__ import annotations

import fnmatch
import functools
from importlib import resources

import yaml

TAINT_FILE = resources.files("orchestrator").joinpath("data/taint.yaml")


@functools.lru_cache(maxsize=1)
def _table() -> tuple[dict[int, tuple[str, str, str]], tuple[dict, ...]]:
    data = yaml.safe_load(TAINT_FILE.read_text()) or {}
    flags = {int(bit): (str(v[0]), str(v[1]), str(v[2])) for bit, v in (data.get("flags") or {}).items()}
    allowed = tuple(data.get("allowed") or ())
    for n, entry in enumerate(allowed, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("bit"), int) or not entry.get("reason"):
            raise ValueError(f"{TAINT_FILE.name}: allowed entry {n} needs a bit and a reason")
    return flags, allowed


def names(mask: int) -> str:
    """`W (WARN: a WARN fired), D (DIE: ...)` for each bit set."""
    flags, _ = _table()
    out = []
    for bit in range(mask.bit_length()):
        if mask >> bit & 1:
            letter, name, what = flags.get(bit, ("?", f"bit {bit}", "not known to this table"))
            out.append(f"{letter} ({name}: {what})")
    return ", ".join(out)


def allowed_mask(case_id: str | None = None, allowed: tuple[dict, ...] | None = None) -> int:
    entries = _table()[1] if allowed is None else allowed
    mask = 0
    for e in entries:
        cases = e.get("cases") or []
        if not cases or (case_id is not None and any(fnmatch.fnmatchcase(case_id, p) for p in cases)):
            mask |= 1 << int(e["bit"])
    return mask


def judge(before: int | None, after: int | None, case_id: str | None = None,
          allowed: tuple[dict, ...] | None = None) -> str:
    """The bits `after` has that `before` had not, less the allowed ones, named; "" when
    none (or when either mask is unknown)."""
    if before is None or after is None:
        return ""
    gained = after & ~before & ~allowed_mask(case_id, allowed)
    return names(gained) if gained else ""
