"""What every stage may import: the results a run is made of, as typed values.

The ground floor of the package (it imports nothing of the project), so the stage that
makes a case result (suites/) and the one that records it (results/) both name it from
here rather than one importing the other upward.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class CaseResult:
    id: str                    # str(suites.case_id.CaseId): "kprobe/foo.tc", "kprobe/foo.tc (instance)"
    suite: str
    description: str
    status: str                # one of suites.status.STATUSES
    seconds: float
    reason: str = ""           # one line: why not PASS
    log: str = ""              # the case's own log, kept for every non-PASS case
    test_status: str | None = None   # what the test itself said, when we overrode it
    splats: list[dict] = dataclasses.field(default_factory=list)
    taint_before: int | None = None
    taint_after: int | None = None
    boot: int = 1              # which guest boot of the run it ran in (restarts count up)
    guest_seconds: float | None = None   # the guest's own time for the case (its uptime)
    guest_logs: str | None = None  # its ftracetest log dir copied back (SSH), run-dir relative
    worker: str | None = None      # the guest that ran it: a pytest-xdist worker (gw0), or g1, g2 of --guests
    cause: dict | None = None      # results/causes.py's {"kind", "why"}, set when the run finishes

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
