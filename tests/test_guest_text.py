"""Text from the guest (a case's reason and log, a splat's title) or a series is untrusted:
it reaches the terminal, summary.txt, the reply mail and junit.xml with its control
characters escaped, and junit.xml stays XML whatever the console printed. On a real run
(tests/data/runs/x86_64-7.2-series-fail) with hostile text put where the guest's goes."""
from __future__ import annotations

import io
import pathlib
import xml.etree.ElementTree as ET

import msgspec

from orchestrator.model import Comparison, Diff, SplatChange
from orchestrator.progress import Progress
from orchestrator.results import compare, report, summary
from orchestrator.results.recorder import load_run
from orchestrator.series import reply

RUN = pathlib.Path(__file__).parent / "data" / "runs" / "x86_64-7.2-series-fail"
# A window title, a screen clear, an OSC 52 clipboard write, a bare CR, XML's forbidden U+FFFE.
HOSTILE = "\x1b]0;owned\x07 \x1b[2J \x1b]52;c;cm0gLXJmIH4=\x07 \rback \ufffe\ud800"


def _hostile_run():
    run = load_run(RUN)
    cases = [msgspec.structs.replace(c, reason=HOSTILE, log=HOSTILE) if c.status == "FAIL" else c
             for c in run.cases]
    return msgspec.structs.replace(run, cases=cases)


def _clean(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text and "\ufffe" not in text, repr(text)
    assert "\\x1b]0;owned\\x07" in text


def test_the_summary_the_merged_summary_and_the_terminal_escape_it():
    run = _hostile_run()
    _clean(summary.render(run, "r"))
    _clean(report.summary_text([run]))
    out = io.StringIO()
    Progress(out).say(f"  FAIL  x.tc  {HOSTILE}")
    _clean(out.getvalue())


def test_the_reply_escapes_it():
    run = _hostile_run()
    diff = Diff(new_splats=[SplatChange(kind="bug", title=HOSTILE, case="kprobe/x.tc", why="on every series run")])
    text = compare.mail_summary(diff, run, run)
    _clean(text)
    mail = reply.render([Comparison(schema_version=1, arch="x86_64", base_run="b", series_run="s",
                                    series=run.series, diff=diff)], [text + HOSTILE], "A <a@example.org>")
    _clean(mail)


def test_junit_stays_xml_for_any_text(tmp_path):
    run = _hostile_run()
    report.merge_junit([run], tmp_path / "junit.xml")
    root = ET.parse(tmp_path / "junit.xml").getroot()      # parses: no character XML 1.0 forbids
    failure = next(e for e in root.iter("failure"))
    assert "\\x1b]0;owned" in failure.get("message") and "\\ufffe" in failure.get("message")
