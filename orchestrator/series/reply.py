"""--reply FILE: the mail a tester sends back to the thread of the series, ready for
`git send-email` or a mail client: In-Reply-To/References the cover letter (else the
first patch), "Re: " its subject, To its sender and Cc whom it went to, the comparison
per arch (confirmed new failures with their first bad patch, flaky cases as such), lines
wrapped for mail, and a Tested-by: line only when every arch was compared and none
regressed. The author's identity is git's (user.name, user.email)."""
from __future__ import annotations

import email.utils
import pathlib
import subprocess
import textwrap

from .. import cache
from ..errors import OrchestratorError
from ..model import Comparison
from ..progress import printable
from ..results import confirm
from ..results.compare import differs, mail_summary
from ..results.recorder import load_comparison
from ..results.summary import checkpatch_lines


def _identity() -> str | None:
    def get(key: str) -> str:
        out = subprocess.run(["git", "config", "--get", key], capture_output=True, text=True)
        return out.stdout.strip()
    name, addr = get("user.name"), get("user.email")
    return email.utils.formataddr((name, addr)) if name and addr else None


def _why(comparison: Comparison) -> list[str]:
    """What makes one arch's comparison a regression: `new failures, coverage lost`,
    `patch 1/2 does not build`."""
    kinds = confirm.regression_kinds(comparison.diff)
    first = comparison.each_patch.first_failing if comparison.each_patch else None
    if first:
        # "its kernel does not build" is said better by naming the patch.
        kinds = [k for k in kinds if not k.endswith("does not build")]
        kinds.insert(0, f"patch {first.number}/{len(comparison.series.patches)} does not build")
    return kinds


def _verdict(comparison: Comparison) -> str:
    """One arch's comparison in a few words, for the table at the top of the reply."""
    diff = comparison.diff
    if diff.regressed or (comparison.each_patch and comparison.each_patch.first_failing):
        return f"regressed: {', '.join(_why(comparison))}"
    noted = [f"{n} {what}" for n, what in ((len(diff.flaky) + len(diff.flaky_splats), "flaky"),
                                           (len(diff.fixed), "fixed"),
                                           (len(diff.newly_supported), "newly supported")) if n]
    if differs(diff):
        return "no regression" + (f" ({', '.join(noted)})" if noted else " (other changes below)")
    return "no difference" + (f" ({', '.join(noted)})" if noted else "")


def _table(compares: list[Comparison], failed: list[tuple[str, str]]) -> list[str]:
    """Every arch on one line each, before the details: what LKFT's and the 0-day bot's
    reports open with."""
    rows = [(c.arch, _verdict(c)) for c in compares] + \
           [(arch, "no comparison (why: below)") for arch, _ in failed]
    width = max(len("arch"), *(len(a) for a, _ in rows))
    out = [f"  {'arch'.ljust(width)}  verdict against the base"]
    for arch, verdict in rows:
        out += textwrap.wrap(f"  {arch.ljust(width)}  {verdict}", WIDTH, subsequent_indent=" " * (width + 6),
                             break_long_words=False, break_on_hyphens=False)
    return out


# Mail bodies are read at 80 columns; quoted lines get their "> " on top.
WIDTH = 76


def _one_line(value: str) -> str:
    """A header value from the series (untrusted): one line, so it cannot add a header."""
    return " ".join(str(value).split())


def _wrapped(text: str) -> list[str]:
    """Each line at WIDTH, continued under its own indent (a case id or path is not broken)."""
    out = []
    for line in text.splitlines():
        indent = line[:len(line) - len(line.lstrip())]
        out += textwrap.wrap(line, WIDTH, subsequent_indent=indent + "  ", break_long_words=False,
                             break_on_hyphens=False) or [""]
    return out


def render(compares: list[Comparison], summaries: list[str], identity: str | None,
           failed: list[tuple[str, str]] = ()) -> str:
    """compares: each arch's compare.json; summaries: each arch's summary text; failed:
    (arch, why) of the arches that ended before a comparison (no Tested-by then)."""
    info = compares[0].series
    patches = info.patches
    mid = info.cover_message_id or (patches[0].message_id if patches else None)
    subject = info.cover_subject or (patches[0].subject if patches else info.title)
    regressed = [f"{c.arch} ({', '.join(_why(c))})" for c in compares
                 if c.diff.regressed or (c.each_patch and c.each_patch.first_failing)]
    mid = _one_line(mid) if mid else None
    lines = [f"Subject: Re: {_one_line(subject).removeprefix('Re: ')}"]
    if mid and " " not in mid:
        lines += [f"In-Reply-To: <{mid}>", f"References: <{mid}>"]
    if identity:
        lines.append(f"From: {identity}")
    if info.mail_from:
        lines.append(f"To: {_one_line(info.mail_from)}")
    cc = [_one_line(a) for a in info.mail_cc if not identity or email.utils.parseaddr(a)[1]
          != email.utils.parseaddr(identity)[1]]
    if cc:
        lines.append(f"Cc: {', '.join(cc)}")
    arches = ", ".join([c.arch for c in compares] + [a for a, _ in failed])
    lines += ["", "Hi,", ""]
    lines += textwrap.wrap(
        f"I ran the series on {arches} in QEMU, each against its base with the tree's own ftrace "
        "selftests (dynamic events, kprobes, fprobes), BPF kprobe_multi checks and the "
        "orchestrator's own cases. Each difference below was run again on both sides in fresh "
        "guests: a confirmed one showed on every run, a likely regression significantly more "
        "often with the series (Fisher's exact test); cases with mixed results at rates the test "
        "cannot tell apart are listed as flaky.", WIDTH) + [""]
    lines += _table(compares, failed) + [""]
    for text in summaries:
        lines += _wrapped(text.rstrip()) + [""]
    for arch, why in failed:
        lines += _wrapped(f"{arch}: no comparison: {why}") + [""]
    if info.checkpatch:   # the same patches on every arch: once
        lines += ["checkpatch --strict, per patch:"]
        lines += _wrapped("\n".join(f"  {l}" for l in checkpatch_lines(info.checkpatch, len(patches)))) + [""]
    if regressed or failed:
        why = ([f"the series regresses on {', '.join(regressed)}"] if regressed else []) + \
              ([f"{', '.join(arch for arch, _ in failed)} got no comparison (above)"] if failed else [])
        lines += textwrap.wrap(f"So no Tested-by from me yet: {'; '.join(why)}.", WIDTH)
    elif identity:
        lines.append(f"Tested-by: {identity}")
    else:
        lines.append("(No Tested-by: line: git config user.name and user.email are not set.)")
    return printable("\n".join(lines)) + "\n"


def write(path: pathlib.Path, compare_dirs: list[pathlib.Path], failed: list[tuple[str, str]] = ()) -> str:
    compares, summaries = [], []
    for d in compare_dirs:
        if not (d / "compare.json").is_file():
            raise OrchestratorError(f"{d} holds no compare.json; --reply needs a series run compared with "
                                    "its base (COMPARE=1).")
        comparison, ((base, _), (series, _)) = load_comparison(d)
        compares.append(comparison)
        summaries.append(mail_summary(comparison.diff, base, series, comparison.bisect, comparison.each_patch,
                                      checkpatch=False))
    text = render(compares, summaries, _identity(), failed)
    cache.atomic_write(path, text)
    return text
