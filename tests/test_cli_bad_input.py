"""Bad input ends with one sentence naming the cause and the fix, and a distinct exit
code, before any work starts. Each case runs the real command line."""
import os
import json
import pathlib
import shutil
import subprocess
import sys

import pytest

from orchestrator.arches import load_table

REPO = pathlib.Path(__file__).resolve().parent.parent


def run(*args, env=None, results=None):
    cmd = [sys.executable, "-m", "orchestrator", "test", *args]
    if results is not None:
        cmd += ["--results-dir", str(results)]
    p = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def _tree_shape(t: pathlib.Path) -> pathlib.Path:
    """Just enough of a kernel tree's shape to pass the tree check."""
    for d in ("arch/x86", "kernel/trace", "tools/testing/selftests/ftrace/test.d/dynevent"):
        (t / d).mkdir(parents=True)
    (t / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 99\nSUBLEVEL = 0\nEXTRAVERSION = -rc1\n")
    (t / "Kconfig").write_text("")
    (t / "tools/testing/selftests/ftrace/ftracetest").write_text("#!/bin/sh\n")
    (t / "tools/testing/selftests/ftrace/test.d/dynevent/a_case.tc").write_text("#!/bin/sh\n")
    return t


@pytest.fixture
def fake_tree(tmp_path):
    return _tree_shape(tmp_path / "linux")


def test_zero_cases_is_incomplete_with_its_own_exit_code(fake_tree, tmp_path, monkeypatch):
    """An empty suite (or --tcdir) tested nothing: exit 9, one sentence, state incomplete,
    and no build was started."""
    from orchestrator import pipeline
    from orchestrator.cli.main import main
    (fake_tree / "tools/testing/selftests/ftrace/test.d/dynevent/a_case.tc").unlink()
    empty = tmp_path / "no-cases"
    empty.mkdir()
    monkeypatch.setattr(pipeline, "prepare_guest", lambda *a, **k: pytest.fail("built with no case to run"))
    for suites, extra in (("dynevent", []), ("tcscripts", ["--tcdir", str(empty)])):
        results = tmp_path / f"r-{suites}"
        code = main(["test", "--kernel", str(fake_tree), "--suite", suites, "--results-dir", str(results), *extra])
        assert code == 9, suites
        (run,) = [d for d in results.iterdir() if d.is_dir() and not d.is_symlink()]
        data = json.loads((run / "results.json").read_text())
        assert data["state"] == "incomplete" and data["exit_code"] == 9 and data["cases"] == []
        assert data["verdict"].startswith(f"No case to run: the suites {suites} hold no case")


def test_unknown_arch(tmp_path):
    p = run("--arch", "sparc", results=tmp_path)
    assert p.returncode == 2
    names = ", ".join(n + (f" ({', '.join(a.aliases)})" if a.aliases else "") for n, a in sorted(load_table().items()))
    assert p.stderr.strip() == f"orchestrator: Unknown arch 'sparc'; valid arch names are: {names}."
    assert "x86_64 (x86)" in names
    assert not any(tmp_path.iterdir())  # nothing started, nothing half-written


def test_kernel_path_that_does_not_exist(tmp_path):
    p = run("--kernel", str(tmp_path / "nope"), results=tmp_path)
    assert p.returncode == 2
    assert "does not exist or is not a directory; point KERNEL= at" in p.stderr


def test_kernel_path_that_is_not_a_tree(tmp_path):
    p = run("--kernel", str(tmp_path), results=tmp_path / "r")
    assert p.returncode == 2
    assert "is not a Linux source tree (no Makefile, Kconfig, arch, kernel/trace)" in p.stderr


def test_a_tree_built_in_place_is_built_from_its_snapshot(fake_tree, tmp_path, monkeypatch, capsys):
    """Not refused (kbuild would refuse O= from it): the build gets a snapshot in the cache
    without the tree's own .config, and the tree is left as it was."""
    from orchestrator.cli.main import main
    from orchestrator.errors import ExitCode, OrchestratorError
    from orchestrator.kernel import build as kbuild
    (fake_tree / ".config").write_text("CONFIG_X=y\n")
    before = sorted(str(p.relative_to(fake_tree)) for p in fake_tree.rglob("*"))
    seen = []

    def configure_and_build(tree, *args, **kwargs):
        seen.append(tree)
        raise OrchestratorError("stopped before make", ExitCode.BUILD_FAILED)
    monkeypatch.setattr(kbuild, "configure_and_build", configure_and_build)
    code = main(["test", "--kernel", str(fake_tree), "--suite", "dynevent", "--cache-dir", str(tmp_path / "c"),
                 "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr()
    assert code == 5 and "mrproper" not in err.err, err.err
    (tree,) = seen
    assert tree.path == fake_tree and tree.source == tmp_path / "c" / "snapshots" / tree.slug
    assert (tree.source / "Makefile").is_file() and not (tree.source / ".config").exists()
    assert "is configured in place" in err.out + err.err
    assert sorted(str(p.relative_to(fake_tree)) for p in fake_tree.rglob("*")) == before


def test_malformed_fragment_line(tmp_path):
    frag = tmp_path / "extra.config"
    frag.write_text("CONFIG_KPROBES=y\nKPROBE_EVENTS=y\n")
    p = run("--kconfig", str(frag), results=tmp_path / "r")
    assert p.returncode == 2
    assert f"{frag}:2: 'KPROBE_EVENTS=y' is not a kconfig line" in p.stderr


def test_missing_fragment_names_the_known_ones(tmp_path):
    p = run("--kconfig", "nosuch", results=tmp_path / "r")
    assert p.returncode == 2
    known = ", ".join(sorted(f.stem for f in (REPO / "kconfigs").glob("*.config")))
    assert f"does not exist; give a path or a name from kconfigs/ ({known})" in p.stderr


def test_timeout_that_is_not_a_number(tmp_path):
    p = run("--case-timeout", "soon", results=tmp_path / "r")
    assert p.returncode == 2
    assert "'soon' is not a number of seconds" in p.stderr


def test_unknown_suite_lists_the_valid_ones(fake_tree, tmp_path):
    p = run("--kernel", str(fake_tree), "--suite", "dynevent,nosuch", results=tmp_path / "r")
    assert p.returncode == 2
    assert ("Unknown suite nosuch; valid suites for this tree are: dynevent, ftrace-all, tcscripts, kprobe_multi."
            in p.stderr)


def test_missing_qemu_names_the_package(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("gcc", "make", "flex", "bison", "bc", "pahole", "ccache", "git", "tar", "xz"):
        found = shutil.which(tool)
        if found:
            (bindir / tool).symlink_to(found)
    env = dict(os.environ, PATH=str(bindir))
    p = run(env=env, results=tmp_path / "r")
    assert p.returncode == 3
    assert ("qemu-system-x86_64 not found, needed for booting x86_64 guests; install it with "
            "`apt-get install qemu-system-x86`") in p.stderr


def test_results_dir_that_is_not_writable(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    p = run("--suite", "dynevent", results=blocker / "results")
    assert p.returncode == 2
    assert f"--results-dir {blocker / 'results'}: {blocker} is a file, not a directory" in p.stderr


def _git_tree(tmp_path):
    t = _tree_shape(tmp_path / "linux")
    (t / "kernel/trace/trace.c").write_text("int x;\n")
    subprocess.run(["git", "init", "-q", str(t)], check=True)
    subprocess.run(["git", "-C", str(t), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(t), "-c", "user.name=T", "-c", "user.email=t@e", "commit", "-qm", "base"],
                   check=True)
    return t


def test_series_file_that_is_not_a_patch(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("Remember to test on arm64.\n")
    p = run("--kernel", str(_git_tree(tmp_path)), "--series", str(notes), results=tmp_path / "r")
    assert p.returncode == 2
    assert "holds no diff and is no cover letter" in p.stderr


def test_patch_with_a_path_escaping_the_tree(tmp_path):
    evil = tmp_path / "evil.patch"
    evil.write_text("From 1234567890123456789012345678901234567890 Mon Sep 17 00:00:00 2001\n"
                    "From: A <a@example.org>\nSubject: [PATCH] x\n\n---\n"
                    "diff --git a/../../etc/passwd b/../../etc/passwd\n--- a/../../etc/passwd\n"
                    "+++ b/../../etc/passwd\n@@ -1 +1 @@\n-root\n+toor\n")
    p = run("--kernel", str(_git_tree(tmp_path)), "--series", str(evil), results=tmp_path / "r")
    assert p.returncode == 2
    assert "touches '../../etc/passwd', a path outside the kernel tree" in p.stderr


def test_series_options_without_a_series(tmp_path):
    p = run("--bisect", results=tmp_path / "r")
    assert p.returncode == 2 and "need a series; give it with --series" in p.stderr


def test_no_command_is_a_shell_string():
    """Processes get argv lists: no shell=True, os.system or os.popen anywhere."""
    for f in (REPO / "orchestrator").rglob("*.py"):
        text = f.read_text()
        for bad in ("shell=True", "os.system(", "os.popen("):
            assert bad not in text, f"{f.name}: {bad}"


def test_fragment_naming_an_option_the_tree_does_not_have(tmp_path):
    frag = tmp_path / "typo.config"
    frag.write_text("CONFIG_FPROBE=y\nCONFIG_FPROBEE=y\n")
    p = run("--kconfig", str(frag), "--suite", "dynevent", results=tmp_path / "r")
    assert p.returncode == 2
    assert "typo.config:2: CONFIG_FPROBEE is not an option of this tree's Kconfig (arch x86)" in p.stderr


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0"])
def test_timeouts_that_never_fire_are_refused(tmp_path, value):
    p = run(f"--case-timeout={value}", results=tmp_path / "r")
    assert p.returncode == 2
    assert f"'{value}' is not a finite number of seconds above 0" in p.stderr


@pytest.mark.parametrize("value", [",", " , "])
def test_an_arch_list_naming_no_arch(tmp_path, value):
    p = run("--arch", value, "--series", "x..y", results=tmp_path / "r")
    assert p.returncode == 2
    assert f"No arch named in '{value}'" in p.stderr


def test_an_arch_list_with_a_trailing_comma_is_that_arch(tmp_path):
    # Accepted as x86_64 (it then stops at the missing series file, after the arch check).
    p = run("--arch", "x86_64,", "--series", str(tmp_path / "none.mbx"), results=tmp_path / "r")
    assert "Unknown arch" not in p.stderr and p.returncode == 2


def test_a_baseline_whose_results_json_is_not_ours(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    (base / "results.json").write_text('{"cases": [{"id": 1}], "splats": []}')
    p = run("--baseline", str(base), results=tmp_path / "r")
    assert p.returncode == 2
    assert p.stderr.strip() == (f"orchestrator: {base}/results.json: cases[0].id: expected `str`, got `int`; "
                                "give a run directory this tool wrote (results/<date>-<time>-<arch>-<pid>).")


def test_a_bug_is_exit_7_with_one_line_and_the_run_says_error(fake_tree, tmp_path, monkeypatch, capsys):
    # A fault that cannot be caused for real on purpose: an exception of ours (not an
    # OrchestratorError) in the middle of a run, after its results dir exists.
    import json
    from orchestrator import pipeline
    from orchestrator.cli.main import main

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the build stage")
    monkeypatch.setattr(pipeline, "prepare_guest", broken)
    code = main(["test", "--kernel", str(fake_tree), "--suite", "dynevent", "--results-dir", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 7
    assert "internal error: RuntimeError: a bug in the build stage at test_cli_bad_input.py:" in err
    assert "Traceback" not in err
    (run_dir,) = [d for d in (tmp_path / "r").iterdir() if d.is_dir() and not d.is_symlink()]
    data = json.loads((run_dir / "results.json").read_text())
    assert data["state"] == "error" and data["exit_code"] == 7
    assert "RuntimeError: a bug in the build stage" in data["verdict"]


def test_a_case_file_with_a_newline_in_its_name(tmp_path):
    tcdir = tmp_path / "tc"
    tcdir.mkdir()
    (tcdir / "ok.tc").write_text("#!/bin/sh\n")
    (tcdir / "two\nlines.tc").write_text("#!/bin/sh\n")
    p = run("--suite", "tcscripts", "--tcdir", str(tcdir), results=tmp_path / "r")
    assert p.returncode == 2
    assert "The case file 'tcscripts/two\\nlines.tc' has a newline or a control character in its name" in p.stderr


def test_user_text_in_a_message_is_escaped_for_the_terminal(tmp_path, capsys):
    """An arch name with a lone surrogate (a matrix spec's JSON can hold one) or an escape
    sequence: one line, escaped, exit 2 (it failed to encode: exit 7 from a UnicodeEncodeError)."""
    from orchestrator.cli.main import main
    spec = tmp_path / "m.yaml"
    spec.write_text('{"arches": "\\uD800\\u001b[2J"}')
    code = main(["workflow", "--spec", str(spec), "--out", str(tmp_path / "w.yml")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("orchestrator: Unknown arch '\\ud800\\x1b[2J'"), err


@pytest.mark.parametrize("spec", ["~/no-such-v2.mbx", "/nonexistent/v2.mbx", "./v2.patch", "series.mbox.gz",
                                  "../patches/0001-tracing-fix.patch"])
def test_a_series_path_that_is_not_there_is_refused_before_any_work(tmp_path, spec):
    cache_dir = tmp_path / "cache"
    p = run("--series", spec, "--compare-base", "--cache-dir", str(cache_dir), results=tmp_path / "r",
            env={**os.environ, "HOME": str(tmp_path)})
    assert p.returncode == 2
    where = tmp_path / spec[2:] if spec.startswith("~/") else pathlib.Path(spec)
    assert p.stderr.strip().startswith(f"orchestrator: The series file {where} does not exist; check the path"), p.stderr
    # Nothing fetched or unpacked for it: the default tree would have been.
    assert not cache_dir.exists() or not any(cache_dir.rglob("*linux*"))


def test_a_branch_with_a_slash_is_still_a_branch(tmp_path):
    # for-next/tracing is no path: it goes on to the tree, whose absence is the error here.
    from orchestrator.series.patches import check_spec
    for spec in ("for-next/tracing", "v6.12..HEAD", "HEAD~3..HEAD", "20261201.1234-1-dev@example.org"):
        check_spec(spec)


def _bad(shape: str, tmp_path: pathlib.Path) -> str:
    """A path of the given bad shape."""
    import os
    if shape == "empty":
        return ""
    if shape == "symlink loop":
        loop = tmp_path / "loop"
        if not loop.is_symlink():
            loop.symlink_to("loop")
        return str(loop / "x")
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    if shape == "under a file":
        return str(blocker / "x")
    if shape == "a file":
        return str(blocker)
    if shape == "a fifo":
        fifo = tmp_path / "a-fifo"
        if not fifo.exists():
            os.mkfifo(fifo)
        return str(fifo)
    return str(tmp_path)   # a directory


def _cases():
    from orchestrator.cli.main import PATH_OPTIONS
    for command, options in PATH_OPTIONS.items():
        for name, kind in options.items():
            shapes = ["empty", "symlink loop", "under a file"]
            shapes += {"dir": ["a file", "a fifo"], "new-dir": ["a file"], "new-file": ["a directory"],
                       "file": ["a directory", "a fifo"]}.get(kind, [])
            for shape in shapes:
                yield command, name, shape


@pytest.mark.parametrize("command, name, shape", list(_cases()))
def test_every_path_option_refuses_a_bad_path_in_one_sentence(tmp_path, capsys, command, name, shape):
    """Each path-valued option of each command (orchestrator/cli/main.py's PATH_OPTIONS),
    given a symlink loop, a path under a file, a file for a directory, a directory for a
    file, a FIFO or nothing: one sentence, exit 2, before any work."""
    from orchestrator.cli.main import main
    bad = _bad(shape, tmp_path)
    argv = [command] if name == "runs" else [command, f"--{name.replace('_', '-')}", bad]
    if command == "report":
        argv += [bad] if name == "runs" else [str(pathlib.Path(__file__).parent / "data" / "runs" / "arm64")]
    if command in ("test", "matrix", "report") and name not in ("results_dir", "out"):
        argv += ["--results-dir" if command != "report" else "--out", str(tmp_path / "out")]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, (argv, err)
    assert err.startswith("orchestrator: ") and len(err.splitlines()) == 1 and "internal error" not in err, err


def test_a_case_file_whose_name_is_not_utf8_is_refused_before_the_build(fake_tree, tmp_path, capsys, monkeypatch):
    """A series can add a case file named with bytes that are no UTF-8: one sentence at
    discovery, exit 2, no build."""
    import os
    from orchestrator import pipeline
    from orchestrator.cli.main import main
    cases = tmp_path / "tc"
    cases.mkdir()
    open(os.path.join(os.fsencode(cases), b"bad\xff.tc"), "w").close()
    monkeypatch.setattr(pipeline, "prepare_guest", lambda *a, **k: pytest.fail("built"))
    code = main(["test", "--kernel", str(fake_tree), "--suite", "tcscripts", "--tcdir", str(cases),
                 "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 2 and "has a name that is not UTF-8; rename it." in err, err


def test_case_globs_are_split_on_commas_and_checked_before_the_build(fake_tree, tmp_path, capsys, monkeypatch):
    """--case a,b --case c: three globs, each checked against the tree's cases first."""
    from orchestrator import pipeline
    from orchestrator.cli.main import main
    monkeypatch.setattr(pipeline, "prepare_guest", lambda *a, **k: pytest.fail("built"))
    code = main(["test", "--kernel", str(fake_tree), "--suite", "dynevent", "--case", "dynevent/a_case.tc,nope1",
                 "--case", "nope2", "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 2 and "--case nope1, nope2 matches no case of the suites dynevent (1 cases)" in err, err


@pytest.mark.parametrize("argv, help_line", [
    (["test", "--timeout", "1"], "see `orchestrator test --help`."),             # the top parser finds it
    (["report", "--bogus"], "see `orchestrator report --help`."),
    (["test", "--arch", "x86_64", "--case-timeout"], "see `orchestrator test --help`."),   # the command's parser
])
def test_an_option_the_command_does_not_have_points_at_that_commands_help(argv, help_line):
    p = subprocess.run([sys.executable, "-m", "orchestrator", *argv], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.rstrip().endswith(help_line), p.stderr


def test_a_signal_after_the_work_is_over_is_no_traceback(tmp_path, monkeypatch, capsys):
    """SIGTERM while the verdict prints or at exit: the handler it had before (main()
    hands the signals back when it ends; for the command, the default action), and one
    raised while main() reports another end is one line and the interrupted exit code
    (seen once: a timeout's SIGTERM at a run's end printed
    `orchestrator.cli.main._Terminated: SIGTERM` and a traceback)."""
    import signal
    from orchestrator.cli import main as cli
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    marker = lambda *_: None  # noqa: E731
    try:
        signal.signal(signal.SIGHUP, marker)
        assert cli.main(["test", "--arch", "nope", "--results-dir", str(tmp_path / "r")]) == 2
        assert signal.getsignal(signal.SIGTERM) == saved[signal.SIGTERM]
        assert signal.getsignal(signal.SIGHUP) is marker
    finally:
        for s, h in saved.items():
            signal.signal(s, h)

    def late_signal(argv=None):
        raise cli._Terminated("SIGTERM")
    monkeypatch.setattr(cli, "main", late_signal)
    capsys.readouterr()
    assert cli.console_main() == int(cli.ExitCode.INTERRUPTED) == 130
    err = capsys.readouterr().err
    assert err.startswith("orchestrator: interrupted") and "Traceback" not in err


@pytest.mark.parametrize("option, value", [("--case", ""), ("--case", ",,,"), ("--suite", ""),
                                           ("--suite", " , "), ("--kconfig", "")])
def test_a_list_option_that_names_nothing_is_refused_not_taken_as_the_default(tmp_path, option, value):
    """`--case ''` ran every case, `--suite ''` the default suites: one sentence instead."""
    p = run(option, value, results=tmp_path / "r")
    assert p.returncode == 2 and f"{option} {value!r} names nothing" in p.stderr, p.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("option, value, words", [
    ("--llvm", "2", "is not LLVM=1 or a version suffix"),
    ("--llvm=", "-19x", "is not LLVM=1 or a version suffix"),
    ("--cross-compile", "a b", "is not a compiler prefix"),
    ("--cross-compile", "aarch64-linux-gnu-;id", "is not a compiler prefix"),
])
def test_a_toolchain_option_kbuild_would_not_take_is_bad_input(tmp_path, option, value, words):
    """Was exit 3 ("a bgcc not found ... apt-get install gcc-a b"): not a missing tool."""
    args = (option + value,) if option.endswith("=") else (option, value)
    p = run(*args, results=tmp_path / "r")
    assert p.returncode == 2 and words in p.stderr, p.stderr


@pytest.mark.parametrize("command", [["matrix"], ["workflow", "--out", "WF"]])
def test_a_matrix_spec_that_is_not_utf8_is_one_sentence(tmp_path, command):
    """Was exit 7, "internal error: UnicodeDecodeError"."""
    spec = tmp_path / "matrix.yaml"
    spec.write_bytes(b"arches: [x86_64]\nkernels:\n  - name: caf\xe9\n")
    argv = [a.replace("WF", str(tmp_path / "wf.yml")) for a in command]
    p = subprocess.run([sys.executable, "-m", "orchestrator", *argv, "--spec", str(spec)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "is not UTF-8 text (byte 0xe9 at offset 39); save it as UTF-8." in p.stderr, p.stderr
    assert not (tmp_path / "wf.yml").exists()
