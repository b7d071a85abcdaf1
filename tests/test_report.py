"""The report layer on real runs (tests/data/runs/<name>/: results.json and console.log
copied from results/): the HTML page, the mail text, the merged JUnit, the results schema."""
from __future__ import annotations

import copy
import os
import html.parser
import json
import re
import pathlib
import xml.etree.ElementTree as ET

import msgspec
import pytest

from orchestrator import model
from orchestrator.suites.splats import decoded_lines
from orchestrator.results import causes, compare, junit, report
from orchestrator.suites.status import FAILING, STATUSES
from orchestrator.model import CaseResult
from orchestrator.progress import fmt_duration
from orchestrator.results.recorder import SCHEMA_VERSION, Recorder

REPO = pathlib.Path(__file__).resolve().parent.parent
RUNS = pathlib.Path(__file__).parent / "data" / "runs"
SCHEMA = REPO / "schema" / "results.schema.json"
TPROBE = "dynevent/add_remove_tprobe_module.tc"
ARGS_USER = "kprobe/kprobe_args_user.tc"
EVIL = '<script>alert("kto")</script>'
_READY = "KTO:READY:"


def record(data: dict) -> model.RunRecord:
    """A document of tests/data (or one a test changed) as the reports take it."""
    return model.convert(data, model.RunRecord)


def records(*runs: tuple[dict, pathlib.Path]) -> list[tuple[model.RunRecord, pathlib.Path]]:
    return [(record(d), p) for d, p in runs]


def load(name: str) -> tuple[dict, pathlib.Path]:
    return json.loads((RUNS / name / "results.json").read_text()), RUNS / name


@pytest.fixture(scope="module")
def x86() -> tuple[dict, pathlib.Path]:
    return load("x86_64-base")


@pytest.fixture(scope="module")
def arm64() -> tuple[dict, pathlib.Path]:
    return load("arm64")


def series_pair() -> tuple[tuple[dict, pathlib.Path], tuple[dict, pathlib.Path], model.Comparison]:
    """The base and series runs of one real `--series --compare` run and its compare.json."""
    from orchestrator.results.recorder import read_comparison
    base, series = load("x86_64-base"), load("x86_64-series")
    return base, series, read_comparison(RUNS / "x86_64-compare")


class Page(html.parser.HTMLParser):
    """What a reader sees: the matrix, the count cells, the headings, the text of <pre>."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.stack: list[tuple[str, dict]] = []
        self.h2: list[str] = []
        self.counts: dict[tuple[str, str], str] = {}
        self.header: list[str] = []
        self.rows: list[list[tuple[str, str]]] = []   # matrix body: (class, text) per cell
        self.pre: list[str] = []
        self.rects: list[dict] = []
        self.text: list[str] = []
        self._cell: dict | None = None
        self._in = {"tbody": False, "thead": False, "pre": False, "h2": False}
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag in self._in:
            self._in[tag] = True
            if tag in ("pre", "h2"):
                (self.pre if tag == "pre" else self.h2).append("")
        if tag == "tr" and self._in["tbody"]:
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = {"tag": tag, "class": a.get("class") or "", "text": "", **a}
        if tag == "rect":
            self.rects.append(a)

    def handle_endtag(self, tag):
        if tag in self._in:
            self._in[tag] = False
        if tag in ("td", "th") and self._cell is not None:
            c = self._cell
            if "data-arch" in c:
                self.counts[(c["data-arch"], c["data-status"])] = c["text"].strip()
            elif self._in["tbody"] and tag == "td":
                self.rows[-1].append((c["class"], c["text"].strip()))
            elif self._in["thead"] and tag == "th" and not c["class"]:
                self.header.append(c["text"].strip())
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell["text"] += data
        if self._in["pre"]:
            self.pre[-1] += data
        if self._in["h2"]:
            self.h2[-1] += data

    def matrix(self) -> dict[str, list[str]]:
        """case id -> statuses; rows whose statuses differ carry a leading '≠'."""
        return {row[0][1].removeprefix("\u2260 "): [text for _, text in row[1:]] for row in self.rows}

    def differing(self) -> set[str]:
        return {row[0][1].removeprefix("\u2260 ") for row in self.rows if row[0][1].startswith("\u2260")}


# -- the page ---------------------------------------------------------------------------

def test_matrix_and_counts_per_arch(x86, arm64):
    page = Page(report.render_html(records(x86, arm64)))
    assert page.header[:3] == ["case", "x86_64", "arm64"]
    for data, label in ((x86[0], "x86_64"), (arm64[0], "arm64")):
        for status, n in data["counts"].items():
            assert page.counts[(label, status)] == str(n)
        assert page.counts[(label, "total")] == str(len(data["cases"]))
        assert page.counts[(label, "splats")] == str(len(data["splats"]))
    assert page.counts[("arm64", "ERROR")] == "0"     # a status one arch has shows for all
    matrix = page.matrix()
    ids = {c["id"] for c in x86[0]["cases"]} | {c["id"] for c in arm64[0]["cases"]}
    assert set(matrix) == ids
    # The rows a reader looks for are marked: not the same status in every run.
    assert page.differing() == {cid for cid, cells in matrix.items() if len(set(cells)) > 1}
    assert "dynevent/add_remove_fprobe.tc" in page.differing()     # PASS on x86_64, UNSUPPORTED on arm64
    for col, (data, _) in enumerate((x86, arm64)):
        for c in data["cases"]:
            assert matrix[c["id"]][col] == c["status"], c["id"]
    # real differences between the arches, coloured by status
    assert matrix[TPROBE] == ["ERROR", "UNSUPPORTED"]
    assert matrix["dynevent/add_remove_fprobe.tc"] == ["PASS", "UNSUPPORTED"]
    row = next(r for r in page.rows if r[0][1].removeprefix("\u2260 ") == TPROBE)
    assert row[1][0] == "st st-ERROR" and row[2][0] == "st st-UNSUPPORTED"
    # a case only one run has is an empty cell, not a status
    only_x86 = sorted({c["id"] for c in x86[0]["cases"]} - {c["id"] for c in arm64[0]["cases"]})
    assert only_x86 and all(matrix[cid][1] == "—" for cid in only_x86)


def test_page_is_offline():
    page_text = report.render_html(records(load("x86_64-base"), load("arm64")))
    page = Page(page_text)
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert "http://" not in page_text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page_text
    assert "style" in page.tags


def test_non_pass_cases_with_reason_log_and_console(x86):
    data, _ = x86
    page_text = report.render_html(records(x86))
    page = Page(page_text)
    text = "".join(page.text)
    for c in data["cases"]:
        if c["status"] != "PASS":
            assert c["reason"] in text, c["id"]
    # the Oopsed case: its console region, from its marker and the first splat to the
    # test's own verdict, up to where the next boot starts, cut to 80 lines
    consoles = [p for p in page.pre if p.startswith("KTO:BEGIN:")]
    assert len(consoles) == sum(c["status"] != "PASS" for c in data["cases"])
    warn = data["splats"][0]["title"]
    oops = next(p for p in consoles if warn in p)
    assert "TAP version 13" in oops
    assert "not ok 1 Generic dynamic event - add/remove tracepoint probe events on module" in oops
    assert "Linux version" not in oops and _READY not in oops
    assert len(oops.splitlines()) == 80
    assert "lines not shown" in oops
    # the FAIL case's region is its own: its KTAP line and its end marker
    fail = next(p for p in consoles if "not ok 1 Kprobe event user-memory access" in p)
    assert fail.rstrip().splitlines()[-1].startswith("KTO:END:")
    # its own log, in full
    log = next(c["log"] for c in data["cases"] if c["id"] == ARGS_USER)
    assert log in page.pre


def test_case_console_regions_on_real_runs(x86, arm64):
    for data, run_dir in (x86, arm64):
        console = (run_dir / "console.log").read_text(errors="replace")
        regions = report.case_console(console, record(data).cases)
        assert sorted(regions) == list(range(len(data["cases"])))
        for i, c in enumerate(data["cases"]):
            region = "\n".join(regions[i])
            if c["status"] != "ERROR":
                # ftracetest's own verdict line names the case
                assert f"ok 1 {c['description'].removesuffix(' (instance)')}" in region, c["id"]


def _without_line(run_dir: pathlib.Path, marker: str, dest: pathlib.Path) -> str:
    lines = (run_dir / "console.log").read_text(errors="replace").splitlines(keepends=True)
    (i,) = [k for k, line in enumerate(lines) if line.rstrip() == marker]
    dest.mkdir()
    (dest / "console.log").write_text("".join(lines[:i] + lines[i + 1:]))
    return (dest / "console.log").read_text()


def _begin_marker(run_dir: pathlib.Path, data: dict, case_id: str) -> str:
    """The KTO:BEGIN line of a case, by its KTAP line (ERROR cases: the last of boot 1)."""
    regions = report.case_console((run_dir / "console.log").read_text(errors="replace"), record(data).cases)
    index = next(i for i, c in enumerate(data["cases"]) if c["id"] == case_id)
    return regions[index][0].rstrip()


def test_case_console_a_lost_marker_costs_only_its_case(x86, tmp_path):
    data, run_dir = x86
    index = next(i for i, c in enumerate(data["cases"]) if c["id"] == "dynevent/add_remove_eprobe.tc")
    console = _without_line(run_dir, _begin_marker(run_dir, data, data["cases"][index]["id"]), tmp_path / "r")
    regions = report.case_console(console, record(data).cases)
    assert set(regions) == set(range(len(data["cases"]))) - {index}


def test_case_console_falls_back_when_the_order_is_off(x86, tmp_path):
    """The hung case lost its BEGIN line: counting from the end would shift every case of
    its boot by one; the KTAP descriptions catch that and the boot gets no regions."""
    data, run_dir = x86
    console = _without_line(run_dir, _begin_marker(run_dir, data, TPROBE), tmp_path / "r")
    boot1 = {i for i, c in enumerate(data["cases"]) if c["boot"] == 1}
    assert data["cases"][max(boot1)]["id"] == TPROBE
    regions = report.case_console(console, record(data).cases)
    assert set(regions) == set(range(len(data["cases"]))) - boot1
    page = Page(report.render_html([(record(data), tmp_path / "r")]))
    assert "console region was not found" in "".join(page.text)
    tail = next(c for c in data["cases"] if c["id"] == TPROBE)["log"].splitlines()[-1]
    assert any(p.rstrip().endswith(tail.rstrip()) for p in page.pre)
    assert not any("KTO:BEGIN:" in p for p in page.pre if "BUG: kernel NULL" in p and tail not in p)


def test_splats_config_stages_versions(x86, arm64):
    page_text = report.render_html(records(x86, arm64))
    page = Page(page_text)
    text = "".join(page.text)
    for s in x86[0]["splats"]:
        assert s["title"] in text
        assert "\n".join(s["lines"]) in page.pre
        assert f"during {s['case']}" in text
    dropped = arm64[0]["config"]["dropped"]
    assert {d["option"] for d in dropped} == {"CONFIG_KPROBES_ON_FTRACE", "CONFIG_FPROBE", "CONFIG_FPROBE_EVENTS"}
    for d in dropped:
        assert d["option"] in text and d["reason"] in text
    assert "not available in this tree" in text
    # one bar per stage and run, the longest stage (suites) the widest
    assert len(page.rects) == len(x86[0]["stages"]) + len(arm64[0]["stages"])
    widths = dict(zip(x86[0]["stages"], (float(r["width"]) for r in page.rects)))
    assert max(widths.values()) == widths["suites"]
    seconds = {name: st["seconds"] for name, st in x86[0]["stages"].items()}
    for name, w in widths.items():       # proportional, a sliver for the reused stages
        assert w == pytest.approx(max(1.0, seconds[name] / seconds["suites"] * widths["suites"]), abs=0.1)
    assert widths["build"] == 1.0 < widths["boot"]
    for data, _ in (x86, arm64):
        for value in data["versions"].values():
            assert value in text
        assert data["kernel"]["release"] in text and data["accel"]["reason"] in text


def test_everything_from_the_run_is_escaped(x86):
    data, run_dir = x86
    evil = copy.deepcopy(data)
    case = next(c for c in evil["cases"] if c["id"] == ARGS_USER)
    case["log"] += "\n" + EVIL + "\x1b[31m\x00"
    case["reason"] = EVIL + "\x07"
    evil["splats"][0]["title"] = EVIL
    evil["versions"]["compiler"] = EVIL
    evil["config"]["dropped"] = [{"option": "CONFIG_X", "asked": "y", "got": "n", "required": False,
                                  "source": "x:1", "kind": "dropped", "reason": EVIL}]
    page_text = report.render_html([(record(evil), run_dir)])
    assert EVIL not in page_text
    assert "&lt;script&gt;alert(&#34;kto&#34;)&lt;/script&gt;" in page_text
    page = Page(page_text)
    assert "script" not in page.tags
    assert sum(EVIL in t for t in page.text) >= 5    # shown as text, where it was
    assert any((EVIL + "\\x1b[31m\\x00") in p for p in page.pre)
    assert EVIL + "\\x07" in "".join(page.text)
    assert not any(ch in page_text for ch in "\x00\x07\x1b")


def test_console_bytes_are_escaped(x86, tmp_path):
    data, run_dir = x86
    raw = (run_dir / "console.log").read_bytes()
    begin = raw.index(b"not ok 1 Kprobe event user-memory access")
    (tmp_path / "console.log").write_bytes(raw[:begin] + b"<b>\xff\xfe</b>\r\n" + raw[begin:])
    page_text = report.render_html([(record(data), tmp_path)])
    assert "<b>\ufffd" not in page_text and "&lt;b&gt;\ufffd\ufffd&lt;/b&gt;" in page_text


def test_series_changes_come_first():
    (b, b_dir), (s, s_dir), comp = series_pair()
    diff = comp.diff
    assert (comp.base_run, comp.series_run) == (b["run_id"], s["run_id"])
    assert compare.compare(record(b), record(s)).new_failures == diff.new_failures != []
    page = Page(report.render_html([(record(b), b_dir), (record(s), s_dir)], diff))
    assert page.h2[0] == "What the series changed"
    assert page.header[:3] == ["case", "base", "series"]
    text = "".join(page.text)
    # A compare.json from before coverage_lost and new_cases_failing: the page takes it as it is.
    for e in (*diff.new_failures, *diff.fixed, *diff.other_changes, *diff.newly_supported,
              *diff.coverage_lost, *diff.only_in_series, *diff.only_in_base):
        assert e.id in text
    for sp in diff.new_splats + diff.gone_splats:
        assert sp.title in text
    for entry in diff.config.gained + diff.config.lost + diff.config.changed + diff.warnings_added:
        assert entry in text
    assert ("adds no failure" in text) != diff.regressed
    # no comparison, no such section
    assert "What the series changed" not in Page(report.render_html([(record(s), s_dir)])).h2


def test_comparison_of_two_real_runs(x86, arm64):
    """compare() on two real runs with real differences (arm64 lacks fprobe) as the diff."""
    diff = compare.compare(record(x86[0]), record(arm64[0]))
    # Cases x86_64 ran that arm64 does not have (the x86 instruction cases) are lost too.
    assert diff.coverage_lost and any(e.series is None for e in diff.coverage_lost)
    page = Page(report.render_html(records(x86, arm64), diff))
    assert page.h2[0] == "What the series changed"
    assert page.h2.index("What the series changed") < page.h2.index("Cases")
    text = "".join(page.text)
    assert "Coverage lost (ran on the base, not with the series)" in text
    # Its columns are the base and the series, not run ids or arches.
    assert page.counts[("base", "total")] == str(len(x86[0]["cases"]))
    assert page.counts[("series", "total")] == str(len(arm64[0]["cases"]))
    assert re.search(r"The series regresses: [a-z ,]*coverage lost", text)
    for e in diff.coverage_lost:
        assert e.id in text and e.reason in text


def test_page_of_a_run_that_failed_early(tmp_path):
    """No boot, no console.log, null accel/taint, a failed stage: the page still says it all."""
    rec = Recorder(tmp_path, "20261122-120001-x86_64-2", _pipeline_meta())
    rec.stage_started("build")
    rec.stage_finished("build", "failed", error="make failed", first_errors=["x.c:1: error: <oops>"])
    rec.set("config", {"dropped": [{"option": "CONFIG_FPROBE", "asked": "y", "got": "n", "required": True,
                                    "source": "tracing.config:20", "kind": "unavailable",
                                    "reason": "depends on HAVE_RETHOOK [=n]"}]})
    rec.finish("failed", "The build failed: make exited 2", 5)
    page = Page(report.render_html([(rec.record, rec.dir)]))
    text = "".join(page.text)
    assert "The build failed: make exited 2" in text and "failed, exit 5" in text
    assert "build failed: make failed" in text and "x.c:1: error: <oops>" in page.pre
    assert "CONFIG_FPROBE" in text and "required" in text
    assert page.counts[("x86_64", "total")] == "0"
    (bar,) = page.rects
    assert bar["fill"] == "#c62828"
    assert report.summary_text([rec.record]).splitlines()[1:] == ["  0 cases: none", "  tree: test"]


def test_write_html(x86, tmp_path):
    out = tmp_path / "report" / "index.html"
    report.write_html(out, records(x86))
    assert out.read_text() == report.render_html(records(x86), page_dir=out.parent)
    assert [p.name for p in out.parent.iterdir()] == ["index.html"]   # no temp file left


# -- the mail text ---------------------------------------------------------------------

def test_summary_text(x86, arm64):
    text = report.summary_text([record(x86[0]), record(arm64[0])])
    lines = text.splitlines()
    entries = _entries(lines)
    # What ran first (kernel, commit, QEMU, accelerator), then the counts.
    assert entries[0] == f"x86_64: Linux 6.12.117 at {x86[0]['kernel']['git_commit'][:12]}, QEMU 7.2.22 TCG"
    assert entries[1] == "  58 cases: 55 pass, 1 fail, 1 error, 1 unsupported; 2 kernel splat(s)"
    assert entries[2] == f"  tree: {x86[0]['kernel']['origin']}"
    # What built it: the compiler and the config fragments.
    assert entries[3] == f"  built with {x86[0]['versions']['compiler']}, config base + tracing + x86_64"
    # Where the run's time went: its five slowest cases, slowest first.
    slowest = sorted(x86[0]["cases"], key=lambda c: -c["seconds"])[:5]
    assert entries[4] == "  slowest: " + ", ".join(f"{c['id']} {fmt_duration(c['seconds'])}" for c in slowest)
    arm_line = next(i for i, l in enumerate(entries) if l.startswith("arm64: "))
    assert entries[arm_line + 1] == "  44 cases: 32 pass, 2 fail, 10 unsupported"
    failing = [(d, c) for d in (x86[0], arm64[0]) for c in d["cases"] if c["status"] in FAILING]
    splats = [s for d in (x86[0], arm64[0]) for s in d["splats"]]
    explained = [c for d, c in failing if causes.of(model.convert(c, model.CaseResult), record(d))]
    assert explained    # the tprobe module Oops and the TCG ustring fetch, at least
    decoded = sum(len(decoded_lines(model.convert(sp, model.Splat))) for sp in splats)
    # Every line within the width, but for one word longer than a line (a path), kept whole.
    assert all(len(l) <= report.SUMMARY_WIDTH or " " not in l.strip() for l in lines), \
        [l for l in lines if len(l) > report.SUMMARY_WIDTH]
    built = sum(1 for d in (x86[0], arm64[0]) if d["versions"].get("compiler"))
    assert len(entries) == 8 + built + len(failing) + len(explained) + len(splats) + decoded   # nothing else
    assert sum(e.startswith("    known cause, ") for e in entries) == len(explained)
    for d, c in failing:
        section = entries[:arm_line] if d is x86[0] else entries[arm_line:]
        entry = next(e for e in section if f" {c['id']}: " in e)
        assert entry.startswith(f"  {c['status']} ")
        shown = entry.split(": ", 1)[1].removesuffix("...")
        assert " ".join(c["reason"].split()).startswith(shown) and len(shown) >= min(
            len(" ".join(c["reason"].split())), report.REASON_MAX - 3)
    for s in splats:
        assert any(s["title"][:100] in e and s["case"] in e for e in entries[1:arm_line])
    # cases that did not fail are not named (TPROBE is, for its x86_64 ERROR)
    named = "\n".join(e for e in entries if not e.startswith(("  slowest: ", "  built with ")))
    assert not any(c["id"] in named for c in arm64[0]["cases"]
                   if c["status"] not in FAILING and c["id"] != TPROBE)


def _entries(lines: list[str]) -> list[str]:
    """The summary's lines with each wrapped entry joined again."""
    out: list[str] = []
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if out and indent > len(out[-1]) - len(out[-1].lstrip()) + 2:
            out[-1] += " " + line.strip()
        else:
            out.append(line)
    return out


def test_summary_text_wraps_long_reasons_and_cuts_none_mid_word(x86):
    data = copy.deepcopy(x86[0])
    case = next(c for c in data["cases"] if c["id"] == ARGS_USER)
    case["reason"] = "word " * 100
    lines = report.summary_text([record(data)]).splitlines()
    start = next(i for i, l in enumerate(lines) if ARGS_USER in l)
    entry = _entries(lines[start:])[0]
    assert entry.endswith(" word...") and all(len(l) <= report.SUMMARY_WIDTH for l in lines[start:start + 4])
    assert len(entry.split(": ", 1)[1]) <= report.REASON_MAX
    case["reason"] = "x" * 300                    # one word longer than a line: whole
    lines = report.summary_text([record(data)]).splitlines()
    assert any(l.strip() == "x" * (report.REASON_MAX - 3) + "..." for l in lines), lines


# -- JUnit -----------------------------------------------------------------------------

def test_junit_render_unchanged(x86):
    """The single-run document is what the orchestrator wrote into that run's junit.xml."""
    data, run_dir = x86
    assert junit.render(record(data)) == (run_dir / "junit.xml").read_text()


def test_merge_junit(x86, arm64, tmp_path):
    out = tmp_path / "merged.xml"
    report.merge_junit([record(x86[0]), record(arm64[0])], out)
    root = ET.parse(out).getroot()
    assert root.tag == "testsuites"
    for data, arch in ((x86[0], "x86_64"), (arm64[0], "arm64")):
        suites = [s for s in root if s.get("name").startswith(arch + ".")]
        assert {s.get("name") for s in suites} == {f"{arch}.{c['suite']}" for c in data["cases"]}
        cases = [tc for s in suites for tc in s.iter("testcase")]
        assert sorted(tc.get("name") for tc in cases) == sorted(c["id"] for c in data["cases"])
        by_status: dict[str, int] = {}
        for c in data["cases"]:
            by_status[c["status"]] = by_status.get(c["status"], 0) + 1
        assert sum(int(s.get("errors")) for s in suites) == by_status.get("ERROR", 0)
        assert sum(int(s.get("failures")) for s in suites) == by_status.get("FAIL", 0) + by_status.get("UNRESOLVED", 0)
        assert sum(int(s.get("skipped")) for s in suites) == by_status.get("UNSUPPORTED", 0)
    oops = next(tc for tc in root.iter("testcase") if tc.get("name") == TPROBE and tc.find("error") is not None)
    assert "BUG: kernel NULL pointer dereference" in oops.find("system-err").text


def test_merge_junit_same_arch_twice_keeps_runs_apart(x86, tmp_path):
    other = copy.deepcopy(x86[0])
    other["label"] = "series"
    out = tmp_path / "merged.xml"
    report.merge_junit([record(x86[0]), record(other)], out)
    names = [s.get("name") for s in ET.parse(out).getroot()]
    assert len(names) == len(set(names)) == 2 * len({c["suite"] for c in x86[0]["cases"]})
    assert {n.split(".")[0] for n in names} == {"x86_64-base", "x86_64-series"}


# -- the results schema ----------------------------------------------------------------

@pytest.fixture(scope="module")
def validator():
    jsonschema = pytest.importorskip("jsonschema", reason="the test extra: pip install -e '.[test]'")
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_schema_file_is_the_one_the_model_makes(validator):
    # python -m orchestrator.model > schema/results.schema.json after a change of the model
    assert validator.schema == model.json_schema()
    record = validator.schema["$defs"]["RunRecord"]["properties"]
    assert record["schema_version"]["enum"] == [SCHEMA_VERSION]
    assert sorted(validator.schema["$defs"]["CaseResult"]["properties"]["status"]["enum"]) == sorted(STATUSES)


def test_the_comparison_schema_file_is_the_one_the_model_makes():
    jsonschema = pytest.importorskip("jsonschema", reason="the test extra: pip install -e '.[test]'")
    # python -m orchestrator.model compare > schema/compare.schema.json after a change of the model
    schema = json.loads((REPO / "schema" / "compare.schema.json").read_text())
    assert schema == model.json_schema("compare")
    # A compare.json of a real series run (the one with a new failure) is what it describes.
    jsonschema.Draft202012Validator(schema).validate(json.loads((RUNS / "x86_64-compare" / "compare.json")
                                                                .read_text().replace("newly_unsupported",
                                                                                     "coverage_lost")))


@pytest.mark.parametrize("name", sorted(p.parent.name for p in RUNS.glob("*/results.json")))
def test_stored_runs_are_valid(validator, name):
    validator.validate(load(name)[0])


def test_stored_runs_cover_the_schema():
    """Plain, base, series and bisect runs: every optional part of the layout is exercised."""
    names = {p.parent.name for p in RUNS.glob("*/results.json")}
    assert {"x86_64-base", "arm64", "x86_64-series", "x86_64-bisect-1"} <= names
    series, bisect = load("x86_64-series")[0], load("x86_64-bisect-1")[0]
    assert series["series"]["patches"] and series["label"] == "series" and "build_warnings" in series
    assert series["series"]["each_patch"]["built"] == 3
    assert bisect["label"] == "bisect-1" and bisect["series"] and len(bisect["cases"]) == 2
    assert "label" not in load("arm64")[0]           # written before labels existed
    assert load("arm64")[0]["config"]["dropped"]


@pytest.mark.parametrize("breakage", [
    lambda d: d["cases"][0].update(status="BROKEN"),
    lambda d: d.update(state="done"),
    lambda d: d.pop("cases"),
    lambda d: d["cases"][0].update(boot=0),
    lambda d: d["splats"][0].update(kind="oopsie"),
    lambda d: d.update(unknown_key=1),
    lambda d: d.update(exit_code=None),             # a finished run has its exit code
    lambda d: d["stages"]["build"].update(state="ok"),
])
def test_schema_rejects(validator, x86, breakage):
    data = copy.deepcopy(x86[0])
    validator.validate(data)
    breakage(data)
    assert list(validator.iter_errors(data))
    with pytest.raises(msgspec.ValidationError):    # and the loader's model, the same
        model.decode(json.dumps(data).encode())


def _pipeline_meta() -> dict:
    """The meta dict pipeline.run_test gives the Recorder (same keys, made-up values)."""
    return {"arch": "x86_64", "label": None,
            "kernel": {"version": "6.12.117", "origin": "test", "path": "/tmp/linux",
                       "tree_id": "git:0", "git_commit": None, "release": None},
            "series": None, "suites": ["dynevent"], "fragments": ["kconfigs/base.config"],
            "host": {"machine": "x86_64", "kernel": "6.1"},
            "versions": {"orchestrator": "0.1.0", "qemu": "QEMU 7.2"},
            "accel": None, "config": None, "taint": None}


def test_recorder_output_is_valid(validator, tmp_path):
    rec = Recorder(tmp_path, "20261122-120000-x86_64-1", _pipeline_meta())
    path = rec.dir / "results.json"
    validator.validate(json.loads(path.read_text()))              # state running
    rec.set("boot_route", {"name": "direct", "what": "QEMU -kernel/-initrd/-append"})
    rec.stage_started("build")
    validator.validate(json.loads(path.read_text()))              # a running stage
    rec.stage_finished("build", reused=True, build_dir="/tmp/b", steps=0, config_seconds=0.0)
    rec.set("config", {"dropped": []})
    rec.set("accel", {"name": "tcg", "reason": "TCG asked for"})
    rec.set("qemu_argv", ["qemu-system-x86_64"])
    rec.set("taint", {"boot": 0, "end": None})
    rec.add_case(CaseResult("dynevent/x.tc", "dynevent", "x", "FAIL", 1.5, reason="failed at: false",
                            log="+ false", taint_before=0, taint_after=0))
    validator.validate(json.loads(path.read_text()))
    rec.set("splats", [])
    rec.set("first_cause", None)
    rec.record.taint.end = 0
    rec.finish("complete", "1 failing case(s)", 1)
    data = json.loads(path.read_text())
    validator.validate(data)
    assert data["counts"] == {"FAIL": 1}
    # and a run that failed early (no boot route, no QEMU) is valid too
    early = Recorder(tmp_path, "20261122-120001-x86_64-2-base", {**_pipeline_meta(), "label": "base"})
    early.stage_started("build")
    early.stage_finished("build", "failed", error="make failed", first_errors=["x.c:1: error"])
    early.finish("failed", "The build failed", 5)
    validator.validate(json.loads((early.dir / "results.json").read_text()))


def test_the_page_links_each_runs_files_relative_to_where_it_is(x86, arm64, tmp_path):
    """A run's own page links its console.log, build.log, config... beside it; a merged page
    elsewhere links the same files of every run, relative to itself."""
    out = tmp_path / "merged" / "report.html"
    report.write_html(out, records(x86, arm64))
    page = out.read_text()
    for data, run_dir in (x86, arm64):
        for name in ("console.log", "results.json"):
            if (run_dir / name).is_file():
                assert f'<a href="{os.path.relpath(run_dir / name, out.parent)}">{name}</a>' in page
    own = report.render_html(records(x86), page_dir=x86[1])
    assert '<a href="console.log">console.log</a>' in own and '>report.html</a>' not in own


def test_the_terminal_summary_names_the_slowest_cases(x86):
    from orchestrator.results import summary
    run = record(x86[0])
    slowest = sorted(run.cases, key=lambda c: -c.seconds)[:summary.SLOWEST_SHOWN]
    line = next(l for l in summary.render(run, "results/x").splitlines() if l.startswith("  slowest: "))
    assert line == "  slowest: " + ", ".join(f"{c.id} {fmt_duration(c.seconds)}" for c in slowest)
    assert slowest[0].seconds >= slowest[-1].seconds > 0


def test_the_terminal_summary_cuts_a_long_reason_at_a_word(x86):
    from orchestrator.results import summary
    data = copy.deepcopy(x86[0])
    failing = next(c for c in data["cases"] if c["status"] in FAILING)
    failing["reason"] = "the probe fired on " + " ".join(f"word{i}" for i in range(60))
    line = next(l for l in summary.render(record(data), "r").splitlines()
                if l.startswith(f"  {failing['status']} ") and failing["id"] in l)
    shown = line.split(failing["id"], 1)[1].strip()
    assert shown.endswith("...") and len(shown) <= 100
    assert failing["reason"].startswith(shown.removesuffix("..."))
    assert shown.removesuffix("...").split()[-1] in failing["reason"].split()   # a whole word
