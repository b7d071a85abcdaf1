"""A splat's frames decoded to file:line where a reader meets it: the summary, the report
page, the comparison's text and the reply. On a real run (tests/data/runs/x86_64-7.2-series-bug:
x86_64, Debian 7.2.12, a series adding a BUG_ON to trace_kprobe.c, its frames decoded
against that run's vmlinux)."""
from __future__ import annotations

import pathlib

import msgspec

from orchestrator.model import SplatChange
from orchestrator.results import compare, report, summary
from orchestrator.results.recorder import load_run
from orchestrator.suites.splats import SHOWN_FRAMES, decoded_lines

RUN = pathlib.Path(__file__).parent / "data" / "runs" / "x86_64-7.2-series-bug"
AT = "trace_kprobe_create_cb+0x6f0/0xf80 trace_kprobe_create_internal (kernel/trace/trace_kprobe.c:938)"
INLINED = "  inlined in trace_kprobe_create_cb (kernel/trace/trace_kprobe.c:1106)"


def test_the_top_frames_read_as_file_and_line_with_their_inlined_chain():
    (bug,) = load_run(RUN).splats
    lines = decoded_lines(bug)
    assert lines[:3] == [AT, INLINED, "trace_probe_create+0x50/0x60 (kernel/trace/trace_probe.c:2415)"]
    assert len([l for l in lines if not l.startswith("  ")]) == SHOWN_FRAMES
    assert decoded_lines(msgspec.structs.replace(bug, frames=None)) == []
    assert decoded_lines(msgspec.structs.replace(bug, frames=[msgspec.structs.replace(bug.frames[0], file=None)])) == []


def test_the_summary_and_the_page_show_them():
    run = load_run(RUN)
    text = summary.render(run, str(RUN))
    assert f"    bug during kprobe/kretprobe_maxactive.tc: kernel BUG at kernel/trace/trace_kprobe.c:938!\n" \
           f"      {AT}\n      {INLINED}\n" in text
    page = report.render_html([(run, RUN)])
    assert "kernel/trace/trace_kprobe.c:938" in page and 'class="splat-decoded"' in page
    assert AT.split(" (")[0] in report.summary_text([run])


def test_the_comparison_text_shows_them_under_a_new_splat():
    run = load_run(RUN)
    (bug,) = run.splats
    diff = compare.compare(msgspec.structs.replace(run, splats=[], cases=run.cases), run)
    diff.new_splats = [SplatChange(kind=bug.kind, title=bug.title, case=bug.case, frames=bug.frames,
                                   why="on every series run, on no base run")]
    text = compare.mail_summary(diff, run, run)
    assert "    kernel BUG at kernel/trace/trace_kprobe.c:938! (during kprobe/kretprobe_maxactive.tc): " in text
    assert f"\n      {AT}\n" in text


LEAK_RUN = pathlib.Path(__file__).parent / "data" / "runs" / "x86_64-7.2-debug-leak"


def test_a_leak_shows_the_code_that_allocated_not_the_allocator():
    """The debug kernel's leak scan (a real run): the decoded top of a leak starts at the
    allocating function, the allocator's own frames are in console.log only."""
    run = load_run(LEAK_RUN)
    assert [s.kind for s in run.splats] == ["leak", "leak"]
    assert run.stages.suites.leak_scan_seconds and not run.stages.suites.leak_scan_errors
    percpu, symbol = (decoded_lines(s) for s in run.splats)
    assert percpu[0] == "alloc_trace_kprobe+0x7f/0x430 (kernel/trace/trace_kprobe.c:281)"
    assert symbol[0] == "alloc_trace_kprobe+0xc7/0x430 (kernel/trace/trace_kprobe.c:286)"
    text = summary.render(run, str(LEAK_RUN))
    assert "leak x30 during the leak scan after the suites: kmemleak: memory leak in" in text
    page = report.render_html([(run, LEAK_RUN)])
    assert "the leak scan after the suites" in page and "trace_kprobe.c:286" in page
