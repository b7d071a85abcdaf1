"""End to end on QEMU 10.0 (QEMU=backports): `deps` brings bookworm-backports' build into
the cache beside the host's 7.2, and the default x86_64 kernel (the one the e2e module
builds) boots on it and runs a suite, recorded as that QEMU and never reused as a 7.2 run."""
import json
import pathlib
import subprocess
import sys

import pytest

from conftest import CACHE_ROOT, DEFAULT_BANNER, run_orchestrator_test

REPO = pathlib.Path(__file__).resolve().parent.parent



@pytest.fixture(scope="module")
def qemu10(e2e_first_run):
    p = subprocess.run([sys.executable, "-m", "orchestrator", "deps", "--arch", "x86_64", "--qemu", "backports",
                        "--cache-dir", str(CACHE_ROOT)], cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return p


@pytest.mark.e2e
def test_the_default_kernel_runs_on_qemu_10(qemu10, e2e_first_run, tmp_path):
    p, _ = run_orchestrator_test(tmp_path, "--qemu", "backports", "--suite", "kprobe_multi")
    latest = tmp_path / "latest"
    data = json.loads((latest / "results.json").read_text())
    assert data["state"] == "complete", p.stderr[-2000:]
    assert data["versions"]["qemu"].startswith("QEMU emulator version 10.0"), data["versions"]["qemu"]
    assert data["versions"]["qemu_build"] == "backports"
    assert data["versions"]["kernel_banner"].startswith(DEFAULT_BANNER)
    # The build is the 7.2 run's: only the emulator differs.
    first = json.loads((e2e_first_run / "results.json").read_text())
    assert data["stages"]["build"]["reused"] is True
    assert data["stages"]["build"]["build_dir"] == first["stages"]["build"]["build_dir"]
    argv = data["qemu_argv"]
    assert argv[0].endswith("/qemu/backports-10.0/root/usr/bin/qemu-system-x86_64") or argv[0] == "qemu-system-x86_64"
    statuses = {c["id"]: c["status"] for c in data["cases"]}
    assert len(statuses) == 9 and set(statuses.values()) <= {"PASS", "UNSUPPORTED"}, statuses
    # The host's own QEMU is still Debian's 7.2.
    host = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True).stdout
    assert "version 7.2" in host


def test_a_qemu_build_not_fetched_is_one_sentence(tmp_path):
    """Before any work: an empty cache has no QEMU 10, and the sentence says how to get it."""
    from orchestrator import arches
    from orchestrator.vm import emulators
    if emulators.on_host(emulators.get("backports"), arches.get_arch("x86_64", "backports")):
        pytest.skip("this host has QEMU 10.0 installed: nothing to fetch")
    p = subprocess.run([sys.executable, "-m", "orchestrator", "test", "--arch", "x86_64", "--qemu", "backports",
                        "--results-dir", str(tmp_path / "r"), "--cache-dir", str(tmp_path / "cache")],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 3, p.stderr
    assert "QEMU 10.0 (qemu-system-x86 from bookworm-backports) is not in the cache for x86_64" in p.stderr
    assert "make deps ARCH=x86_64 QEMU=backports" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "cache" / "sources").exists()   # nothing fetched
