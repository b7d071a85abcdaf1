"""The parsers fed garbage, truncated and interleaved output (hypothesis): they never
raise anything but the one clear error they are meant to, and a case whose result line
was cut is never reported PASS."""
from __future__ import annotations

import pathlib

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

from orchestrator.suites import ktap, status, runner as suites
from orchestrator.series import patches as series
from orchestrator.errors import OrchestratorError
from orchestrator.kernel.kconfig import parse_fragment
from orchestrator.suites.splats import SplatDetector

from conftest import read_log  # noqa: E402

DATA = pathlib.Path(__file__).parent / "data"
REAL_CONSOLE = read_log(DATA / "x86_64-6.12.117-tprobe-oops.console.log").decode(errors="replace").splitlines()
REAL_KTAP = ["TAP version 13", "1..1", "ok 1 Generic dynamic event - add/remove kprobe events"]
FUZZ = settings(max_examples=150, deadline=None)
lines = st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=120), max_size=40)


@FUZZ
@given(lines)
def test_ktap_never_raises_on_garbage(garbage):
    doc = ktap.parse(garbage)
    for r in doc.results:
        assert r.status in status.STATUSES
    ktap.ftracetest_verdicts(garbage)


@FUZZ
@given(st.integers(min_value=0, max_value=len(REAL_KTAP[2]) - 1), lines)
def test_a_cut_result_line_is_never_a_pass(cut, noise):
    """The result line cut anywhere before its end, with noise around it."""
    out = REAL_KTAP[:2] + noise[:3] + [REAL_KTAP[2][:cut]] + noise[3:]
    doc = ktap.parse(out)
    assert not any(r.status == "PASS" and r.description == "Generic dynamic event - add/remove kprobe events"
                   for r in doc.results)


@FUZZ
@given(lines, st.integers(min_value=0, max_value=20))
def test_program_results_never_raise_and_cut_output_is_no_pass(noise, cut):
    spec = suites.CaseSpec("kprobe_multi/cookies", "kprobe_multi", "/kto/bin/kprobe_multi", ("cookies",))
    full = ["TAP version 13", "1..1", "# x: 3 hits, expected 3", "ok 1 kprobe_multi/cookies"]
    out = full[:2] + noise + [full[3][:cut]]
    (result,) = suites._program_results(spec, out, 1.0, 0)
    assert result.status != "PASS" or cut == len(full[3]) or \
        any(l.strip() == full[3] for l in noise)   # the noise happens to hold the whole line


@FUZZ
@given(st.lists(st.sampled_from(REAL_CONSOLE), max_size=200), lines)
def test_splat_detector_on_shuffled_real_console_and_garbage(real, garbage):
    d = SplatDetector()
    d.current_case = "kprobe/x.tc"
    for line in real + garbage:
        d.feed(line)
    d.flush()
    assert all(s.kind and s.title for s in d.splats)


@FUZZ
@given(st.binary(max_size=2000))
def test_series_reader_only_says_bad_input(data):
    try:
        msgs = series.split_mbox(data)
        series._load_messages([(f"m{i}", m) for i, m in enumerate(msgs, 1)], "mbox", "fuzz")
    except OrchestratorError as exc:
        assert exc.message.endswith(".") or exc.message.endswith(")")


@FUZZ
@given(garbage=lines)
def test_kconfig_fragment_reader_only_says_bad_input(tmp_path_factory, garbage):
    f = tmp_path_factory.mktemp("frag") / "x.config"
    f.write_text("\n".join(l.replace("\r", "") for l in garbage), errors="replace")
    try:
        for opt in parse_fragment(f):
            assert opt.name.startswith("CONFIG_")
    except OrchestratorError as exc:
        assert "is not a kconfig line" in exc.message
