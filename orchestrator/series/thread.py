"""A series as it arrives from the list: a whole thread (lore's t.mbox.gz, `b4 mbox`) with
the cover, the patches, replies carrying Reviewed-by/Acked-by/Tested-by, sometimes two
revisions; or a Message-ID (or a lore link) to fetch it by.

The maintainers' own tool reads it: `b4 am` (PyPI b4, a dependency) picks the newest
revision, puts its patches in order and adds the replies' trailers; what it writes is then
read like any `b4 am` mbox (series/patches.py). Attestation checks are off: they ask DNS,
and a test run is no place to vouch for a sender.
"""
from __future__ import annotations

import dataclasses
import email
import email.policy
import gzip
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

from .. import hosttools
from ..errors import ExitCode, OrchestratorError

# "[PATCH v2 3/7]", "[RFC PATCH 3/7]": the revision and the counter.
_COUNTER = re.compile(r"\[[^\]]*?(?:\bv(\d+)\b[^\]]*?)?\b(\d+)/(\d+)\]", re.I)
_MSGID = re.compile(r"<?([^\s<>/@{}]+@[^\s<>/@{}]+?)>?")
_LORE_LINK = re.compile(r"https?://(?:lore\.kernel\.org|patch\.msgid\.link)/(?:[^/\s]+/)?([^/\s]+@[^/\s]+?)/?(?:[Tt]/?)?(?:#\S*)?")


class ThreadError(OrchestratorError):
    """A thread b4 cannot make a whole series of (exit 2)."""


@dataclasses.dataclass(frozen=True)
class AmReady:
    mbox: bytes             # the patches, in order, with the replies' trailers
    cover: bytes | None     # the cover letter of that revision, if it had one
    revision: int
    said: str               # what b4 printed (which revision, which trailers)


def message_id_of(spec: str) -> str | None:
    """The Message-ID a SERIES= names (bare, in <>, or a lore / patch.msgid.link URL)."""
    m = _LORE_LINK.fullmatch(spec.strip())
    if m:
        return m.group(1)
    m = _MSGID.fullmatch(spec.strip())
    return m.group(1) if m and not os.path.exists(spec) else None


def counter(subject: str) -> tuple[int, int, int] | None:
    """(revision, number, total) of "[PATCH v2 3/7] ..."; revision 1 when unnumbered."""
    m = _COUNTER.search(subject)
    return (int(m.group(1) or 1), int(m.group(2)), int(m.group(3))) if m else None


def is_thread(subjects_and_diffs: list[tuple[str, bool]]) -> bool:
    """An mbox b4 must read rather than apply as it is: it holds patches and replies (a
    message with no diff that is no cover letter, or a "Re:"), or the same patch number
    twice (revisions)."""
    if not any(has_diff for _, has_diff in subjects_and_diffs):
        return False
    seen = set()
    for subject, has_diff in subjects_and_diffs:
        c = counter(subject)
        if re.match(r"\s*(re|aw|sv)\s*:", subject, re.I) or (not has_diff and not (c and c[1] == 0)):
            return True
        if c:
            if (c[1], c[2]) in seen:
                return True
            seen.add((c[1], c[2]))
    return False


def b4_argv() -> list[str]:
    """b4 beside this Python (the venv's), else the one on PATH."""
    beside = pathlib.Path(sys.executable).parent / "b4"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("b4")
    if found:
        return [found]
    raise ThreadError("b4 is not installed, and a thread (or a Message-ID) needs it; run `make deps` "
                      "(it installs b4 from PyPI into .venv) or `pip install b4`.", ExitCode.MISSING_HOST_TOOL)


def _b4_env() -> dict[str, str]:
    env = dict(os.environ)
    n = int(env.get("GIT_CONFIG_COUNT", "0") or 0)
    env.update({"GIT_CONFIG_COUNT": str(n + 1), f"GIT_CONFIG_KEY_{n}": "b4.attestation-policy",
                f"GIT_CONFIG_VALUE_{n}": "off"})
    return env


def am_ready(thread: pathlib.Path | None = None, msgid: str | None = None, timeout: float = 300) -> AmReady:
    """`b4 am` of a thread mbox (offline), or of a Message-ID fetched from lore."""
    with tempfile.TemporaryDirectory(prefix="kto-b4-") as tmp:
        out = pathlib.Path(tmp, "am")
        if thread is not None:
            local = pathlib.Path(tmp, "thread.mbox")
            data = thread.read_bytes()
            local.write_bytes(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
            argv = [*b4_argv(), "--offline-mode", "am", "-m", str(local), "-o", str(out)]
        else:
            argv = [*b4_argv(), "am", "-o", str(out), msgid or ""]
        try:
            got = hosttools.run_tree(argv, capture_output=True, text=True, timeout=timeout,
                                     env=_b4_env(), cwd=tmp)
        except subprocess.TimeoutExpired:
            got = subprocess.CompletedProcess(argv, 124, "", f"b4 took more than {timeout:.0f} s")
        said = (got.stdout + got.stderr).strip()
        mbxs = sorted(out.glob("*.mbx")) if out.is_dir() else []
        if got.returncode or not mbxs:
            last = said.splitlines()[-1][:200] if said else f"exit {got.returncode}"
            if msgid is not None:
                raise ThreadError(
                    f"b4 could not fetch the thread of <{msgid}> ({last}); where the network allows, "
                    f"download https://lore.kernel.org/all/{msgid}/t.mbox.gz and give that file as SERIES=.")
            raise ThreadError(f"b4 found no series in the thread {thread} ({last}); give an mbox that "
                              "holds the patches (lore's t.mbox.gz of the cover letter, or `b4 mbox`).")
        covers = sorted(out.glob("*.cover"))
        mbox = mbxs[0].read_bytes()
        m = re.search(r"latest revision: v(\d+)|^\s*\[PATCH v(\d+)", said, re.M)
        revision = int((m.group(1) or m.group(2)) if m else 1)
        return AmReady(mbox, covers[0].read_bytes() if covers else None, revision, said)


def missing_patches(subjects: list[str]) -> tuple[int, list[int]]:
    """(total, the numbers of 1..total no subject carries), from the patches' counters."""
    counters = [c for c in map(counter, subjects) if c]
    if not counters:
        return len(subjects), []
    total = max(c[2] for c in counters)
    have = {c[1] for c in counters}
    return total, [n for n in range(1, total + 1) if n not in have]


def cover_headers(cover: bytes) -> tuple[str, str | None]:
    msg = email.message_from_bytes(cover, policy=email.policy.compat32)
    subject = " ".join(str(msg.get("Subject", "")).split())
    mid = str(msg.get("Message-Id", "")).strip().strip("<>") or None
    return subject, mid
