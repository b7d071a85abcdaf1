"""Commands that start others (make and its recipe shells and compilers) end as a tree."""
import os
import signal
import time

import pytest

from orchestrator import hosttools


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie waiting for its reaper is gone for our purpose.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def test_an_interrupt_ends_the_whole_tree(tmp_path):
    pidfile = tmp_path / "grandchild"

    def interrupt(signum, frame):
        raise KeyboardInterrupt("SIGTERM")   # what the CLI raises for SIGTERM/SIGHUP
    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(KeyboardInterrupt):
            hosttools.run_tree(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    grandchild = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while _alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(grandchild)


def test_output_and_input_as_subprocess_run_gives_them():
    out = hosttools.run_tree(["sh", "-c", "read x; echo got $x; echo err >&2; exit 3"], input="it\n",
                             capture_output=True, text=True)
    assert (out.returncode, out.stdout, out.stderr) == (3, "got it\n", "err\n")


def test_a_build_gets_nothing_exported_that_steers_kbuild(monkeypatch):
    # A kernel developer's shell, and an outer `make test ARCH=x86_64 JOBS=2`.
    exported = {"ARCH": "arm64", "CROSS_COMPILE": "aarch64-linux-gnu-", "LLVM": "1", "KCFLAGS": "-Werror",
                "O": "/home/dev/build", "KBUILD_OUTPUT": "/home/dev/out", "KCONFIG_CONFIG": ".config.dev",
                "MAKEFLAGS": " -j8 --jobserver-auth=3,4 -- ARCH=x86_64 JOBS=2", "MAKELEVEL": "1",
                "INSTALL_MOD_PATH": "/tmp/mods"}
    for name, value in exported.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CCACHE_DISABLE", "")   # not kbuild's: kept
    # Read by make as variables, by gcc or by pkg-config: not named as kbuild's, left out too.
    others = {"YACC": "/bin/false", "PERL": "/bin/false", "CPATH": "/home/dev/include",
              "GCC_EXEC_PREFIX": "/opt/gcc/", "PKG_CONFIG_PATH": "/opt/lib/pkgconfig"}
    for name, value in others.items():
        monkeypatch.setenv(name, value)
    env, left_out = hosttools.build_environment({"KBUILD_BUILD_USER": "orchestrator"})
    # (Under `make check`, make's own MFLAGS is in the environment too: left out as well.)
    assert set(exported) <= set(left_out) == {n for n in left_out if n in hosttools.KBUILD_STEERING
                                              or n.startswith(hosttools.KBUILD_STEERING_PREFIXES)}
    assert not (set(left_out) | set(others)) & set(env)
    assert env["KBUILD_BUILD_USER"] == "orchestrator" and "CCACHE_DISABLE" in env and env["PATH"]
    assert set(env) <= hosttools.BUILD_PASSES | {"KBUILD_BUILD_USER"} | {n for n in env if n.startswith("CCACHE_")}


def test_the_build_key_changes_with_what_changes_the_build(tmp_path):
    """A build dir is reused only for the same tree, config, route, toolchain and the
    environment this tool gives make; ccache's settings change how fast, not what."""
    from orchestrator.arches import get_arch
    from orchestrator.kernel import build
    arch = get_arch("x86_64")
    ours = build.make_environment(tmp_path / "cache")
    toolchain = {"compiler": "gcc (Debian 12.2.0-14) 12.2.0", "make": "GNU Make 4.3"}
    inputs = dict(tree_id="t1", allconfig_text="CONFIG_KPROBES=y\n", route_digest="r",
                  arch=arch, toolchain=toolchain, ours=ours)
    key = build.build_key(**inputs)
    changed = [dict(inputs, tree_id="t2"), dict(inputs, allconfig_text="CONFIG_KPROBES=n\n"),
               dict(inputs, route_digest="r2"), dict(inputs, arch=get_arch("arm64")),
               dict(inputs, toolchain={**toolchain, "compiler": "gcc (Debian 14.2.0-19) 14.2.0"}),
               dict(inputs, ours={**ours, "LANG": "de_DE.UTF-8"}),
               dict(inputs, ours={**ours, "KBUILD_BUILD_USER": "someone"})]
    assert len({build.build_key(**c) for c in changed} | {key}) == len(changed) + 1
    assert build.build_key(**dict(inputs, ours={**ours, "CCACHE_MAXSIZE": "1G"})) == key


def test_an_interrupted_git_leaves_no_index_lock(tmp_path):
    """git holds index.lock while a commit's pre-commit hook runs: ended by SIGTERM it
    removes the lock; subprocess.run's SIGKILL left it, and every later git command in
    that repo failed with 'index.lock: File exists'."""
    import subprocess
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "f").write_text("x\n")
    subprocess.run(["git", "-C", str(repo), "add", "f"], check=True)
    hook = repo / ".git" / "hooks" / "pre-commit"
    hook.write_text(f"#!/bin/sh\ntouch {tmp_path}/hook-ran\nexec sleep 60\n")
    hook.chmod(0o755)

    def interrupt(signum, frame):
        raise KeyboardInterrupt("SIGTERM")
    old = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.5)
        with pytest.raises(KeyboardInterrupt):
            hosttools.run_tree(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t",
                                "commit", "-q", "-a", "-m", "m"], capture_output=True)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert (tmp_path / "hook-ran").exists()   # interrupted while the lock was held
    assert not (repo / ".git" / "index.lock").exists()
