"""arm64 end to end, beside x86_64: a series that breaks only arm64's build, on both arches
at once (each arch its verdict, one reply), and a splat on arm64 decoded to file:line.

It needs the arm64 cross toolchain (`make deps ARCH=arm64`: gcc-aarch64-linux-gnu and
Debian's arm64 busybox) and builds the default tree for arm64 once (about 6 minutes cold
on 2 cores); where that toolchain is not installed it is skipped, as the loongarch64
module is.
"""
import email
import email.policy
import json
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from conftest import CACHE_ROOT, series_on_default_tree
from test_e2e_series import COMMENT, WARN

from orchestrator.model import bare_subject  # noqa: E402
from orchestrator.project import PROJECT_ROOT as REPO  # noqa: E402

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("aarch64-linux-gnu-gcc") is None,
                                 reason="no arm64 cross compiler (aarch64-linux-gnu-gcc): `make deps ARCH=arm64`")]

# A call of a helper arm64 does not have: only arm64 compiles this file, and kbuild makes
# an implicit declaration an error.
ARM64_BREAK = ("arm64: kprobes: Reject probes on the single-step slot",
               [("arch/arm64/kernel/probes/kprobes.c",
                 "\tif (probe_addr & 0x3)\n\t\treturn -EINVAL;\n",
                 "\tif (probe_addr & 0x3)\n\t\treturn -EINVAL;\n"
                 "\tif (arm64_probe_in_xol_slot(probe_addr))\n\t\treturn -EINVAL;\n")])
SUITE = "kprobe_multi"


@pytest.fixture(scope="module")
def series_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("series")
    series_on_default_tree(out, "arm64-break", [ARM64_BREAK, COMMENT], cover=True, base=True)
    series_on_default_tree(out, "warn", [WARN])
    return out


def _orchestrator(results: pathlib.Path, suite: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator", "test", "--suite", suite,
                           "--results-dir", str(results), "--cache-dir", str(CACHE_ROOT), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=5400)


def test_a_series_that_breaks_only_arm64_gets_each_arch_its_verdict_and_one_reply(series_files, tmp_path):
    mail = tmp_path / "mail.txt"
    p = _orchestrator(tmp_path / "results", SUITE, "--arch", "x86_64,arm64", "--series",
                      str(series_files / "arm64-break.mbx"), "--each-patch", "--reply", str(mail))
    print(p.stdout[-6000:], p.stderr[-4000:])
    # The worst arch's code: arm64's series does not build (5).
    assert p.returncode == 5, p.stderr[-3000:]
    assert "series, per arch: x86_64 exit 0; arm64 exit 5" in p.stderr

    compares = {}
    for d in (tmp_path / "results").iterdir():
        if d.name.endswith("-compare") and not d.is_symlink():
            c = json.loads((d / "compare.json").read_text())
            compares[c["arch"]] = c
            c["dir"] = d
    assert set(compares) == {"x86_64", "arm64"}
    x86, arm = compares["x86_64"], compares["arm64"]
    # x86_64: every patch builds and nothing differs.
    assert x86["each_patch"]["first_failing"] is None and x86["each_patch"]["built"] == 2
    assert not x86["diff"]["regressed"] and x86["diff"]["series_failed"] is None
    # arm64: patch 1 is named with the compiler's error, and the series' kernel does not build.
    first = arm["each_patch"]["first_failing"]
    assert first["number"] == 1 and bare_subject(first["subject"]) == ARM64_BREAK[0]
    assert re.search(r"arch/arm64/kernel/probes/kprobes\.c:\d+:\d+: error: .*arm64_probe_in_xol_slot",
                     first["error"]), first
    assert arm["diff"]["regressed"] and arm["diff"]["series_failed"]["stage"] == "build"
    # Each base run (this one's, or an earlier one of the same base it reused) is of the
    # base the series names, on its own arch.
    for arch, c in compares.items():
        base = json.loads((c["dir"] / "base" / "results.json").read_text())
        assert base["arch"] == arch and base["state"] == "complete"
        assert base["kernel"]["git_commit"] == c["series"]["base_commit"]

    # One mail for both arches, threaded under the cover letter, no Tested-by.
    msg = email.message_from_string(mail.read_text(), policy=email.policy.default)
    cover = (series_files / "arm64-break.mbx").read_text()
    cover_id = re.search(r"(?mi)^Message-ID: <([^>]+)>", cover).group(1)
    assert msg["In-Reply-To"] == f"<{cover_id}>" and msg["Subject"].startswith("Re: [PATCH 0/2]")
    body = msg.get_content()
    table = body[body.index("verdict against the base"):].splitlines()[1:3]
    assert re.match(r"\s+x86_64\s+no difference", table[0]), table
    assert re.match(r"\s+arm64\s+regressed: .*does not build", table[1]), table
    assert "arm64_probe_in_xol_slot" in body and "patch 1" in body
    assert "Tested-by:" not in body and "no Tested-by" in body
    long_lines = [l for l in body.splitlines() if len(l) > 80 and "error:" not in l]
    assert not long_lines, long_lines


def test_a_splat_on_arm64_is_decoded_to_the_line(series_files, tmp_path):
    """The WARN the series adds fires in the kprobe-event path: summary.txt shows its
    frames as kernel/trace/...c:LINE, decoded with the run's own vmlinux."""
    p = _orchestrator(tmp_path, "kprobe", "--arch", "arm64", "--series", str(series_files / "warn.mbx"),
                      "--case", "kprobe/add_and_remove.tc")
    print(p.stdout[-4000:], p.stderr[-3000:])
    data = json.loads((tmp_path / "latest" / "results.json").read_text())
    assert data["state"] == "complete", p.stderr[-3000:]
    warns = [s for s in data["splats"] if s["title"].startswith("WARNING")
             and (s.get("location") or {}).get("file") == "kernel/trace/trace_kprobe.c"]
    assert warns, [s["title"] for s in data["splats"]]
    summary = (tmp_path / "latest" / "summary.txt").read_text()
    assert re.search(r"kernel/trace/trace_kprobe\.c:\d+", summary), summary
