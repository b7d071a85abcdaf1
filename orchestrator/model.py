"""What every stage may import: a run's record, as typed values, and its one JSON form.

The ground floor of the package (it imports nothing of the project), so the stage that
makes a case result (suites/) and the one that records it (results/) both name it from
here rather than one importing the other upward.

These classes are the one definition of results.json and of a series' compare.json: the
recorder writes a `RunRecord` or a `Comparison` with `encode`, `decode` reads one back
(checking every field's type on the way in, with the path of the first wrong one), and
schema/results.schema.json and schema/compare.schema.json are generated from them
(`python -m orchestrator.model [results|compare]`; a test keeps each equal).
msgspec over pydantic or dataclasses + jsonschema: it reads and checks a 44 KB series run
in 0.17 ms where jsonschema's check alone took 8.4 ms (`make bench ONLY=load`,
2026-12-06, 2-CPU Xeon), and it depends on nothing else.
"""
import json
import re
import sys
from typing import Annotated, Any, Literal, get_args

import msgspec
from msgspec import Meta

SCHEMA_VERSION = 1


class Record(msgspec.Struct, forbid_unknown_fields=True):
    """Every part of results.json: an unknown key is a file this tool did not write."""

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON values: for the templates, the mail and the workers' lines."""
        return msgspec.to_builtins(self)

    def copy(self) -> Any:
        """A deep copy: a value kept while its original goes on changing (a splat that
        folds later repeats)."""
        return msgspec.convert(msgspec.to_builtins(self), type(self))


Status = Literal["PASS", "FAIL", "UNRESOLVED", "ERROR", "XFAIL", "UNSUPPORTED", "UNTESTED", "SKIP"]
STATUSES: tuple[str, ...] = get_args(Status)
SplatKind = Literal["warning", "ftrace-bug", "kasan", "stall", "bug", "oops", "panic",
                    "rethook", "lockdep", "ubsan", "leak", "hang"]
RunState = Literal["running", "complete", "failed", "incomplete", "error"]
StageState = Literal["running", "done", "failed"]
CauseKind = Literal["tree", "config", "emulator", "image", "test", "kernel", "unsettled"]
Line = Annotated[int, Meta(ge=1)]
Count = Annotated[int, Meta(ge=0)]
Seconds = Annotated[float, Meta(ge=0)]


# -- the kernel's reports ---------------------------------------------------------
class Location(Record, kw_only=True):
    """Where the kernel says a report comes from (a BUG's or WARN's own file:line)."""
    file: str
    line: Line


class Inlined(Record, kw_only=True):
    function: str | None = None
    file: Annotated[str | None, Meta(description="Relative to the kernel tree.")] = None
    line: Line | None = None


class Frame(Record, kw_only=True):
    """One stack frame decoded against the run's vmlinux (kernel/symbolize.py)."""
    frame: Annotated[str, Meta(description="As printed: func+0xoff/0xsize.")]
    module: str | None = None
    function: str | None = None
    file: Annotated[str | None, Meta(description="Relative to the kernel tree.")] = None
    line: Line | None = None
    inlined_by: list[Inlined] = []


class Splat(Record):
    """One kernel report (WARN, BUG, Oops, RCU stall...) seen on the console."""
    kind: Annotated[SplatKind, Meta(description="The catalogue's class of report (suites/splats.py).")]
    title: Annotated[str, Meta(description="The report's headline (the WARNING/BUG/... line, without its timestamp).")]
    kernel_time: Annotated[float | None, Meta(description="printk timestamp of its first line, seconds since that boot; "
                                                          "null when it came without timestamps (a case turned printk.time off).")]
    console_line: Annotated[int, Meta(description="1-based line of console.log where the report starts "
                                                  "(counted over every boot of the run).", ge=1)]
    lines: Annotated[list[str], Meta(description="The report's lines without timestamps (capped at 120).")]
    case: Annotated[str | None, Meta(description="Id of the case running when it started; null during boot "
                                                 "or between cases.")] = None
    count: Annotated[int, Meta(description="How many identical reports were folded into this one.", ge=1)] = 1
    location: Location | None = None
    frames: Annotated[list[Frame] | None, Meta(description="Its stack frames decoded to file:line; null when "
                                                           "none could be read.")] = None


# -- a case -----------------------------------------------------------------------
class Cause(Record, kw_only=True):
    """The known cause of a case that did not pass (data/causes.yaml, else its splat)."""
    kind: CauseKind
    why: str


class CaseResult(Record):
    """One case's result."""
    id: Annotated[str, Meta(description="<suite>/<case>, e.g. dynevent/add_remove_kprobe.tc; ' (instance)' appended "
                                        "for ftracetest's instance run of the same case.", min_length=1)]
    suite: Annotated[str, Meta(description="The suite (ftracetest test.d directory, tcscripts or kprobe_multi).", min_length=1)]
    description: Annotated[str, Meta(description="The case's KTAP description; the id when it gave none (ERROR).")]
    status: Annotated[Status, Meta(description="ftracetest's verdict, SKIP (KTAP skip), or ERROR (the case did "
                                               "not finish). A case that passed while the kernel splatted is FAIL.")]
    seconds: Annotated[float, Meta(description="Wall time of the case (split evenly between a case and its "
                                               "instance twin).", ge=0)]
    reason: Annotated[str, Meta(description="One line: why it is not PASS; empty for PASS.")] = ""
    log: Annotated[str, Meta(description="Its own log (or the console tail for ERROR), kept for every non-PASS "
                                         "case.")] = ""
    test_status: Annotated[Status | None, Meta(description="What the test itself said when the orchestrator "
                                                           "overrode it (a splat during a passing case).")] = None
    splats: Annotated[list[Splat], Meta(description="Splats reported while it ran.")] = []
    taint_before: Annotated[int | None, Meta(description="/proc/sys/kernel/tainted before the case.")] = None
    taint_after: Annotated[int | None, Meta(description="/proc/sys/kernel/tainted after it; null when it did "
                                                        "not finish.")] = None
    boot: Annotated[int, Meta(description="Which guest boot of the run it ran in (restarts count up).", ge=1)] = 1
    guest_seconds: Annotated[float | None, Meta(description="Its duration by the guest's own clock.")] = None
    guest_logs: Annotated[str | None, Meta(description="Its ftracetest log dir copied back from the guest (SSH, "
                                                       "non-PASS), relative to the run's directory.")] = None
    worker: Annotated[str | None, Meta(description="The guest that ran it: a pytest-xdist worker (gw0...) or "
                                                   "a guest of --guests (g1...).")] = None
    cause: Annotated[Cause | None, Meta(description="Set when the run finishes.")] = None


# -- the run's parts ----------------------------------------------------------------
class Kernel(Record, kw_only=True):
    version: Annotated[str, Meta(description="From the tree's top Makefile, e.g. 6.12.117.")]
    origin: Annotated[str, Meta(description="Where the tree came from, for the report.")]
    path: Annotated[str, Meta(description="The tree's location.")]
    tree_id: Annotated[str, Meta(description="Changes whenever the tree's content does.")]
    git_commit: Annotated[str | None, Meta(description="HEAD commit; null for a plain directory.")] = None
    release: Annotated[str | None, Meta(description="uname -r of the booted guest; null until it booted.")] = None


_SUBJECT_TAG = re.compile(r"^\s*\[[^\]]*\]\s*")


def bare_subject(subject: str) -> str:
    """A patch's subject without its "[PATCH v2 1/3]" tag: what a line that already says
    "patch 1/3" shows."""
    return _SUBJECT_TAG.sub("", subject)


class Patch(Record, kw_only=True):
    number: Annotated[int, Meta(description="1-based position in the series.", ge=1)]
    subject: Annotated[str, Meta(description="Subject as sent, [PATCH ...] prefix kept.")]
    author: str
    message_id: str | None = None
    patch_id: Annotated[str, Meta(description="git patch-id --stable of the diff.")] = ""
    files: Annotated[list[str], Meta(description="Tree-relative paths the diff touches.")] = []
    source_commit: Annotated[str | None, Meta(description="The commit it came from (range input).")] = None
    commit: Annotated[str | None, Meta(description="The commit made from it in the worktree.")] = None


class FirstFailing(Record, kw_only=True):
    number: Line
    subject: str
    commit: str | None = None
    error: str


class PatchRun(Record, kw_only=True):
    """EACH_PATCH=test: one commit's run."""
    number: Line
    run: str
    failing: list[str]
    splats: Count


class EachPatch(Record, kw_only=True):
    """EACH_PATCH=1 (build every commit) or test (build, boot and run the suites on each)."""
    mode: Literal["build", "test"] = "build"
    built: Count
    first_failing: FirstFailing | None = None
    tested: list[PatchRun] = []


class PatchCheck(Record, kw_only=True):
    """The tree's scripts/checkpatch.pl --strict on one patch of the series (series/checks.py)."""
    number: Line
    subject: str
    summary: Annotated[str, Meta(description="checkpatch's `total: ...` line, or why it did not run.")]
    errors: Count = 0
    warnings: Count = 0
    checks: Count = 0
    findings: Annotated[list[str], Meta(description="`TYPE:NAME file:line: message`, the first few.")] = []
    kernel_doc: Annotated[list[str], Meta(description="scripts/kernel-doc -Wall warnings the patch adds in the "
                                                      "files it touches: `file:line: message`.")] = []


class SeriesInfo(Record, kw_only=True):
    """The series under test, on series and bisect runs."""
    kind: Annotated[Literal["mbox", "thread", "directory", "range"], Meta(description="How it was given: thread is a thread or Message-ID read by b4 am.")]
    spec: Annotated[str, Meta(description="What the user gave (path, Message-ID or git range).")]
    title: str
    cover_subject: str | None = None
    cover_message_id: str | None = None
    named_base: Annotated[str | None, Meta(description="The base the series names (base-commit:).")] = None
    mail_from: Annotated[str | None, Meta(description="Who sent it (its cover letter's From:, else patch 1's).")] = None
    mail_cc: Annotated[list[str], Meta(description="Its To: and Cc: addresses: a reply goes to all.")] = []
    prerequisite_patch_ids: Annotated[list[str], Meta(description="prerequisite-patch-id: lines of the "
                                                                  "series: patches its base needs first.")] = []
    base_commit: str
    tip_commit: str
    worktree: str
    patches: list[Patch]
    each_patch: EachPatch | None = None
    checkpatch: Annotated[list[PatchCheck], Meta(description="Per patch, scripts/checkpatch.pl --strict.")] = []


class Host(Record, kw_only=True):
    machine: str
    kernel: str


class Versions(Record, kw_only=True, omit_defaults=True):
    """One version line per tool, filled in as the run learns them."""
    orchestrator: str
    qemu: str
    qemu_build: str | None = None
    compiler: str | None = None
    pahole: str | None = None
    make: str | None = None
    ccache: str | None = None
    binutils: str | None = None
    busybox: Annotated[str | None, Meta(description="The guest's userland: the busybox, shell and awk the image holds, each path with its hash.")] = None
    busybox_guest: Annotated[str | None, Meta(description="busybox's banner inside the guest.")] = None
    kernel_banner: Annotated[str | None, Meta(description="/proc/version of the guest.")] = None


class Accel(Record, kw_only=True):
    name: Literal["kvm", "tcg"]
    reason: str


class Dropped(Record):
    """A kconfig option asked for by a fragment but not in the final .config."""
    option: Annotated[str, Meta(description="With its CONFIG_ prefix.", pattern="^CONFIG_")]
    asked: str
    got: Annotated[str, Meta(description="In the final .config; 'n' when absent.")]
    required: Annotated[bool, Meta(description="Marked '# required': its absence fails the run (exit 4).")]
    source: Annotated[str, Meta(description="Fragment file and line, e.g. tracing.config:20.")]
    kind: Annotated[Literal["unavailable", "undefined", "dropped"], Meta(description="unavailable: the tree/arch cannot give it; undefined: no such symbol; "
                                                                                     "dropped: a fragment could fix it.")]
    reason: Annotated[str, Meta(description="The unmet dependencies, e.g. 'depends on FPROBE [=n]'.")]


class ConfigOutcome(Record, kw_only=True):
    dropped: list[Dropped]
    notes: list[str] = []


class Taint(Record, kw_only=True):
    boot: int
    end: int | None = None


class BootRoute(Record, kw_only=True):
    name: Literal["direct", "builtin"]
    what: str


class Stage(Record, kw_only=True, omit_defaults=True):
    """One stage's state and timing, plus what the stage reports (only what it has)."""
    state: StageState
    seconds: Seconds | None = None
    at: Annotated[float | None, Meta(description="When it started, in seconds since the process started.")] = None
    reused: bool | None = None
    error: str | None = None
    build_dir: str | None = None
    steps: Count | None = None
    config_seconds: Seconds | None = None
    make_command: Annotated[list[str] | None, Meta(description="build: the kernel's make, as run in the tree.")] = None
    make_environment: Annotated[dict[str, str] | None, Meta(description="build: what this tool set for make over "
                                                                        "the user's environment.")] = None
    ignored_environment: Annotated[list[str] | None, Meta(description="build: exported variables kept from make "
                                                                      "(ARCH, CROSS_COMPILE, LLVM, KCFLAGS, MAKEFLAGS...).")] = None
    first_errors: list[str] | None = None
    path: str | None = None
    bytes: Count | None = None
    program_errors: dict[str, str] | None = None
    seconds_to_shell: Seconds | None = None
    guest_uptime_at_shell: float | None = None
    console_tail: list[str] | None = None
    boots: Count | None = None
    restart_seconds: list[float] | None = None
    restart_guest_seconds: list[float | None] | None = None
    leak_scan_seconds: Annotated[list[float] | None, Meta(description="suites: each guest's kmemleak scan after "
                                                                      "its last case (a kernel with kmemleak: "
                                                                      "KCONFIG=debug); its leaks are splats of kind leak.")] = None
    leak_scan_errors: Annotated[list[str] | None, Meta(description="suites: why a guest's leak scan did not "
                                                                   "complete.")] = None


class Stages(Record, kw_only=True, omit_defaults=True):
    """The stages a run reached (image comes first on the builtin boot route)."""
    build: Stage | None = None
    image: Stage | None = None
    boot: Stage | None = None
    suites: Stage | None = None

    def started(self) -> list[tuple[str, Stage]]:
        """(name, stage) of the stages the run reached, in the order they started."""
        reached = [(name, s) for name in self.__struct_fields__ if (s := getattr(self, name)) is not None]
        return sorted(reached, key=lambda item: (item[1].at is None, item[1].at or 0.0))


class FirstCause(Record, kw_only=True):
    """The first poisoning splat during a case and the failing cases after it in that boot."""
    case: str
    kind: str
    title: str
    failing_after: list[str]


class Spread(Record, kw_only=True):
    """A case's statuses over the last runs of the same kernel and inputs."""
    runs: Annotated[int, Meta(ge=2)]
    counts: dict[str, Annotated[int, Meta(ge=1)]]


# -- what a series (or a night) changed against its base: compare.json --------------
Tally = Annotated[str, Meta(description="How many of a side's runs showed it: k/n.", pattern=r"^\d+/\d+$")]


class Seen(Record, kw_only=True, omit_defaults=True):
    series: Tally
    base: Tally
    base_history: Annotated[Tally | None, Meta(description="The base kernel's earlier runs with the same "
                                                           "inputs, when they were counted.")] = None


class SideCounts(Record, kw_only=True):
    base: Count
    series: Count


class Attribution(Record, kw_only=True):
    """The patch that last changed a line of a splat's location or stack (series/attribute.py)."""
    patch: Line
    patches: Line
    subject: str
    commit: str
    file: str
    line: Line
    frame: Annotated[str, Meta(description="The frame the line is in; empty for the report's own location.")] = ""


class KnownCause(Cause, kw_only=True, omit_defaults=True):
    follows: Annotated[str | None, Meta(description="The splat before it in the same case whose cause "
                                                    "this is (a panic after a known Oops).")] = None


class CaseChange(Record, kw_only=True, omit_defaults=True):
    """A case whose first result differs between the sides, or that one side lacks."""
    id: str
    base: Annotated[Status | None, Meta(description="Null: the base has no such case.")] = None
    series: Annotated[Status | None, Meta(description="Null: the series' tree has no such case.")] = None
    reason: str = ""
    test_status: Annotated[Status | None, Meta(description="What the test itself said, when a splat "
                                                           "made the status FAIL.")] = None
    # Once judged over the tries (results/confirm.py):
    tries: SideCounts | None = None
    seen: Annotated[Seen | Tally | None, Meta(description="A failing case only the series has: k/n of "
                                                          "its runs.")] = None
    p: float | None = None
    base_statuses: list[Status] = []
    series_statuses: list[Status] = []


class SplatChange(Record, kw_only=True, omit_defaults=True):
    """A splat one side shows and the other does not."""
    kind: SplatKind
    title: str
    case: str | None = None
    location: Location | None = None
    frames: list[Frame] | None = None
    seen: Seen | None = None
    why: Annotated[str | None, Meta(description="Why it counts against the series.")] = None
    attributed: Attribution | None = None
    # In flaky_splats: the list it came from, its tallies, and a cause known to be noise.
    was: Literal["new_splats", "gone_splats"] | None = None
    series: Tally | None = None
    base: Tally | None = None
    base_history: Tally | None = None
    known_cause: KnownCause | None = None


class Likely(Record, kw_only=True, omit_defaults=True):
    """Mixed runs in which the series shows it significantly more often (confirm.py)."""
    id: Annotated[str, Meta(description="The case, or `splat <title>`.")]
    was: str
    series: Tally
    base: Tally
    base_history: Tally | None = None
    p: float | None = None
    reason: str = ""
    test_status: Status | None = None
    base_statuses: list[Status] = []
    series_statuses: list[Status] = []
    splats: Annotated[list[str], Meta(description="Titles of the splats seen during the case.")] = []
    # A splat's:
    kind: SplatKind | None = None
    title: str | None = None
    case: str | None = None
    location: Location | None = None
    frames: list[Frame] | None = None
    seen: Seen | None = None


class Flaky(Record, kw_only=True, omit_defaults=True):
    """Mixed runs at rates the test cannot tell apart: not a difference."""
    id: str
    status: Annotated[Status, Meta(description="The status it is counted by (its worst).")]
    was: str
    series: Tally
    base: Tally
    base_statuses: list[Status] = []
    series_statuses: list[Status] = []
    reason: str = ""
    p: float | None = None
    base_history: Tally | None = None
    splats: list[str] = []


class ConfigDelta(Record, kw_only=True):
    gained: list[str] = []
    lost: list[str] = []
    changed: list[str] = []


class SeriesFailed(Record, kw_only=True):
    """The series' kernel did not build or boot, the base's did."""
    stage: Literal["build", "boot"]
    why: str
    splats: list[SplatChange] = []


class AddedWarning(Record, kw_only=True):
    """A compiler warning the series adds in a file it touches (kernel/buildwarn.py)."""
    file: str
    line: Line
    message: str
    patch: Annotated[int | None, Meta(description="The patch that last changed the line (git blame over "
                                                  "base..tip); null for a line older than the series.")] = None

    def text(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class TestInfo(Record, kw_only=True):
    name: str
    alpha: float
    max_tries: int


class Diff(Record, kw_only=True):
    """What the series changed (results/compare.py), judged over tries (results/confirm.py)."""
    new_failures: list[CaseChange] = []
    fixed: list[CaseChange] = []
    coverage_lost: list[CaseChange] = []
    newly_supported: list[CaseChange] = []
    other_changes: list[CaseChange] = []
    new_cases_failing: list[CaseChange] = []
    only_in_series: list[CaseChange] = []
    only_in_base: list[CaseChange] = []
    new_splats: list[SplatChange] = []
    gone_splats: list[SplatChange] = []
    config: ConfigDelta = msgspec.field(default_factory=ConfigDelta)
    warnings_added: list[AddedWarning] = []
    warnings_unchecked: Annotated[list[str], Meta(description="Files the base was not compiled for: no claim.")] = []
    series_failed: SeriesFailed | None = None
    flaky: list[Flaky] = []
    flaky_splats: list[SplatChange] = []
    likely_regressions: list[Likely] = []
    unsettled: Annotated[list[str], Meta(description="Case files more tries could still settle.")] = []
    tries: Annotated[SideCounts | None, Meta(description="Runs per side it was judged over.")] = None
    test: TestInfo | None = None
    regressed: Annotated[bool, Meta(description="It counts against the series: exit 1, no Tested-by.")] = False


class HistoryLine(msgspec.Struct, kw_only=True):
    """One run in a kernel's history (<cache>/history/<key>.jsonl, results/history.py)."""
    run_id: str | None = None
    statuses: dict[str, str]
    splats: Annotated[list[str] | None, Meta(description="Its splats' keys; null in lines written "
                                                         "before splats were kept.")] = None


class BisectStep(Record, kw_only=True):
    number: Line
    run: str
    built: bool


class Bisect(Record, kw_only=True):
    patches: Line
    steps: Count
    tries_per_step: Line = 1
    first_bad: Annotated[dict[str, Patch], Meta(description="Target (a case, or `splat <title>`) -> its first bad patch.")] = {}
    unresolved: Annotated[dict[str, str], Meta(description="Target -> why no patch could be named.")] = {}
    cases: list[str] = []
    tested: list[BisectStep] = []


class Comparison(Record, kw_only=True):
    """results/<run>-compare/compare.json."""
    schema_version: Literal[1]
    arch: str
    base_run: str
    series_run: str
    series: SeriesInfo
    diff: Diff
    bisect: Bisect | None = None
    each_patch: EachPatch | None = None


class Baseline(Record, kw_only=True, omit_defaults=True):
    path: str
    run_id: str | None = None
    diff: Annotated[Diff | None, Meta(description="results/compare.py's diff, confirmed by "
                                                  "results/confirm.py.")] = None
    note: str | None = None


class Transport(Record, kw_only=True, omit_defaults=True):
    name: Literal["serial", "ssh"]
    connects: Count | None = None
    refused_commands: Annotated[Count | None, Meta(description=(
        "Commands the guest's SSH server refused to start (its fork failed) and that were "
        "asked for again on a new channel."))] = None

    @classmethod
    def of_sessions(cls, name: str, sessions: list) -> "Transport":
        """The record of a run's sessions over one transport (every guest and boot; or
        the records of each pytest worker's, which are summed the same way)."""
        if name != "ssh":
            return cls(name=name)
        return cls(name=name, connects=sum(s.connects or 0 for s in sessions),
                   refused_commands=sum(s.refused_commands or 0 for s in sessions))


class GuestShare(Record, kw_only=True):
    guest: str
    cases: int
    boots: int
    console_log: str


class Guests(Record, kw_only=True, omit_defaults=True):
    count: Annotated[int, Meta(ge=2)]
    why: str
    order: Annotated[str | None, Meta(description="The order the guests took the cases in "
                                                  "(suites/order.py), and from what.")] = None
    per_guest: list[GuestShare] = []


class Worker(Record, kw_only=True):
    worker: str
    cases: int
    boots: int
    console_log: str | None = None


class PytestRun(Record, kw_only=True):
    workers: list[Worker]


class RunRecord(Record, kw_only=True, omit_defaults=True):
    """results/<run-id>/results.json: one run of one arch (build, boot, suites), rewritten
    atomically after every change. While state is 'running' later fields may be null.
    The fields without a default are always written (null until known); the others only
    once the run has them."""
    schema_version: Literal[1]
    run_id: Annotated[str, Meta(description="<date>-<time>-<arch>-<pid>[-<label>], also the run's directory.", pattern=r"^\d{8}-\d{6}-[A-Za-z0-9_]+-\d+(-[A-Za-z0-9_-]+)?$")]
    state: Annotated[RunState, Meta(description="complete: every stage ran and every case has a result; failed: "
                                                "a stage failed (verdict says why); incomplete: interrupted or cases "
                                                "missing; error: the orchestrator itself failed.")]
    started_at: str
    finished_at: str | None
    arch: Annotated[str, Meta(description="Row of orchestrator/data/arches.yaml.", min_length=1)]
    label: Annotated[str | None, Meta(description="base, series, patch-N or bisect-N for a series run's parts.")] = None
    kernel: Kernel
    series: SeriesInfo | None
    suites: list[str]
    fragments: list[str]
    host: Host
    versions: Versions
    accel: Accel | None
    config: ConfigOutcome | None
    taint: Taint | None
    boot_route: BootRoute | None = None
    build_warnings: Annotated[dict[str, list[str]], Meta(description="Series runs: compiler warnings of each .c "
                                                                     "file the series touches.")] = {}
    build_warnings_level: Annotated[int, Meta(description="kbuild's W= level build_warnings were compiled at "
                                                          "(0: the build's own flags, before W=1 was used).")] = 0
    qemu_argv: list[str] = []
    stages: Stages
    cases: list[CaseResult]
    splats: Annotated[list[Splat], Meta(description="Every splat, in console order (each also under its case).")]
    first_cause: FirstCause | None = None
    history: Annotated[dict[str, Spread], Meta(description="Cases whose statuses over the last runs were not "
                                                           "all the same.")] = {}
    verdict: Annotated[str | None, Meta(description="One line: the outcome, or why the run failed.")]
    exit_code: int | None
    counts: dict[Status, Annotated[int, Meta(ge=1)]] = {}
    baseline: Baseline | None = None
    transport: Transport | None = None
    guests: Guests | None = None
    pytest: PytestRun | None = None

    def __post_init__(self) -> None:
        # What the state promises, checked on the way in (msgspec names the record).
        if self.state == "running":
            if self.verdict is not None or self.exit_code is not None:
                raise ValueError("state is running but a verdict or exit_code is set")
        elif self.exit_code is None or self.verdict is None:
            raise ValueError(f"state is {self.state} but verdict or exit_code is null")


_ENCODER = msgspec.json.Encoder()


def encode(record: msgspec.Struct) -> bytes:
    return _ENCODER.encode(record)


def to_builtins(value: Any) -> Any:
    """A record (or part) as plain JSON values, for the templates and the mail."""
    return msgspec.to_builtins(value)


def decode(raw: bytes, kind: type = RunRecord) -> Any:
    """raw as a `kind`; msgspec.ValidationError names the first wrong field ($.cases[3].status)."""
    return msgspec.json.decode(raw, type=kind)


def convert(value: Any, kind: type) -> Any:
    """Plain JSON values (a worker's line, a dict built elsewhere) as a `kind`, checked."""
    return msgspec.convert(value, type=kind)


# What RunRecord.__post_init__ checks, in the schema's words (other tools read the file).
_STATE_RULES = [{"if": {"properties": {"state": {"const": "running"}}},
                 "then": {"properties": {"verdict": {"type": "null"}, "exit_code": {"type": "null"}}},
                 "else": {"required": ["verdict", "exit_code"],
                          "properties": {"verdict": {"type": "string"}, "exit_code": {"type": "integer"}}}}]


# The files the model defines, by the name of their schema under schema/.
SCHEMAS = {"results": RunRecord, "compare": Comparison}


def json_schema(name: str = "results") -> dict:
    kind = SCHEMAS[name]
    schema = msgspec.json.schema(kind)
    if kind is RunRecord:
        schema["$defs"]["RunRecord"]["allOf"] = _STATE_RULES
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://example.invalid/orchestrator/{name}.schema.json",
            "title": f"orchestrator {name}.json, schema_version {SCHEMA_VERSION}",
            "description": f"Generated from orchestrator/model.py (python -m orchestrator.model {name}); "
                           "do not edit by hand.",
            **schema}


if __name__ == "__main__":
    json.dump(json_schema(*sys.argv[1:2]), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
