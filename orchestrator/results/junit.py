"""JUnit XML from a run's record, for CI systems that read it."""
from __future__ import annotations

import pathlib
import xml.etree.ElementTree as ET

from .. import cache
from ..model import CaseResult, RunRecord
from ..suites.status import FAILING, SKIPPED

# JUnit tells a failed check from an error of the harness: the guest's ERROR is the latter.
_FAILURE = FAILING - {"ERROR"}


def _xml_char(ch: str) -> bool:
    """What XML 1.0 may hold (its Char production)."""
    c = ord(ch)
    return ch in "\t\n\r" or 0x20 <= c <= 0xD7FF or 0xE000 <= c <= 0xFFFD or c >= 0x10000


def _clean(text: str) -> str:
    """XML 1.0 cannot hold most control characters, lone surrogates or U+FFFE/U+FFFF;
    a console log may hold any of them."""
    return "".join(ch if _xml_char(ch) else ch.encode("unicode_escape").decode("ascii") for ch in text)


def testsuites(run: RunRecord, prefix: str | None = None) -> list[ET.Element]:
    """One <testsuite> per suite of one run, named `<prefix>.<suite>` (prefix: the arch
    unless given, e.g. "x86_64-series" when several runs of one arch share a document)."""
    prefix = prefix or run.arch
    suites: dict[str, list[CaseResult]] = {}
    for case in run.cases:
        suites.setdefault(case.suite, []).append(case)
    out = []
    for suite, cases in suites.items():
        el = ET.Element("testsuite", name=f"{prefix}.{suite}", tests=str(len(cases)),
                        failures=str(sum(c.status in _FAILURE for c in cases)),
                        errors=str(sum(c.status == "ERROR" for c in cases)),
                        skipped=str(sum(c.status in SKIPPED for c in cases)),
                        time=f"{sum(c.seconds for c in cases):.2f}")
        for c in cases:
            tc = ET.SubElement(el, "testcase", classname=f"{prefix}.{suite}", name=c.id,
                               time=f"{c.seconds:.2f}")
            message = _clean(f"{c.status}: {c.reason or c.description or c.id}")
            body = _clean(c.log)
            if c.status in _FAILURE:
                ET.SubElement(tc, "failure", message=message, type=c.status).text = body
            elif c.status == "ERROR":
                ET.SubElement(tc, "error", message=message, type="ERROR").text = body
            elif c.status in SKIPPED:
                ET.SubElement(tc, "skipped", message=message)
            if c.splats:
                ET.SubElement(tc, "system-err").text = _clean("\n\n".join(
                    "\n".join(s.lines) for s in c.splats))
        out.append(el)
    return out


def to_string(root: ET.Element) -> str:
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def render(run: RunRecord) -> str:
    root = ET.Element("testsuites", name=f"orchestrator {run.run_id}")
    root.extend(testsuites(run))
    return to_string(root)


def write(run: RunRecord, path: pathlib.Path) -> None:
    cache.atomic_write(path, render(run))
