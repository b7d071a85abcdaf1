"""results.ktap read back by the kernel's own KTAP reader (tools/testing/kunit/kunit_parser.py
from Debian's 6.12 tree), on a real run's results."""
import io
import json
import sys

import pytest

from conftest import extract_from_tarball
from orchestrator import model
from orchestrator.results import ktap_out


@pytest.fixture(scope="module")
def kunit_parser(tmp_path_factory):
    top = extract_from_tarball(tmp_path_factory.mktemp("kunit"), "--wildcards", "*/tools/testing/kunit/*.py")
    sys.path.insert(0, str(top / "tools/testing/kunit"))
    try:
        import kunit_parser
        import kunit_printer
        yield kunit_parser, kunit_printer
    finally:
        sys.path.remove(str(top / "tools/testing/kunit"))


def test_the_kernels_ktap_reader_reads_a_run(data_dir, kunit_parser):
    parser, printer = kunit_parser
    data = json.loads((data_dir / "ab-x86_64-v2" / "series" / "results.json").read_text())
    text = ktap_out.render(model.convert(data, model.RunRecord))
    import inspect
    args = [printer.Printer(io.StringIO())] if len(inspect.signature(parser.parse_run_tests).parameters) > 1 else []
    test = parser.parse_run_tests(text.splitlines(), *args)   # 6.12's takes the lines only
    suites = {s.name: s for s in test.subtests}
    assert list(suites) == ["x86_64.dynevent", "x86_64.kprobe", "x86_64.tcscripts", "x86_64.kprobe_multi"]
    assert test.counts.errors == 0
    by_case = {t.name: t for s in test.subtests for t in s.subtests}
    assert len(by_case) == len(data["cases"])
    want = {c["id"]: c["status"] for c in data["cases"]}
    S = parser.TestStatus
    for name, t in by_case.items():
        status = want[name]
        expected = (S.SUCCESS if status in ("PASS", "XFAIL") else S.SKIPPED if status in ("UNSUPPORTED", "UNTESTED", "SKIP")
                    else S.FAILURE)
        assert t.status == expected, (name, status, t.status)
    assert suites["x86_64.dynevent"].status == S.FAILURE   # add_remove_kprobe.tc fails there
    assert suites["x86_64.kprobe"].status == S.FAILURE
