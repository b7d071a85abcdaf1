"""W=1 warnings a series adds: charged to the patch whose line they are in (git blame over
base..tip in a real repository), shown per patch, and compare.json files from before the
warnings were typed still load."""
import json
import subprocess

from orchestrator.model import AddedWarning, Patch
from orchestrator.results import compare
from orchestrator.results.recorder import read_comparison
from orchestrator.series import attribute

from conftest import GIT_ID

AB = "ab-x86_64-v2"


def _git(repo, *args):
    return subprocess.run(["git", *GIT_ID, "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_each_added_warning_is_charged_to_the_patch_of_its_line(tmp_path):
    repo = tmp_path / "repo"
    (repo / "kernel").mkdir(parents=True)
    src = repo / "kernel" / "x.c"
    src.write_text("int a(void)\n{\n\tint old;\n\treturn 0;\n}\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "base")
    base = _git(repo, "rev-parse", "HEAD")
    commits = []
    for subject, text in (("x: one", "int a(void)\n{\n\tint old;\n\treturn 0;\n}\n/* one */\n"),
                          ("x: two", "int a(void)\n{\n\tint old;\n\tint unused;\n\treturn 0;\n}\n/* one */\n")):
        src.write_text(text)
        _git(repo, "commit", "-qam", subject)
        commits.append(_git(repo, "rev-parse", "HEAD"))
    patches = [Patch(number=i + 1, subject=f"[PATCH {i + 1}/2] x", author="a", commit=c) for i, c in enumerate(commits)]
    added = [AddedWarning(file="kernel/x.c", line=4, message="unused variable 'unused' [-Wunused-variable]"),
             AddedWarning(file="kernel/x.c", line=3, message="unused variable 'old' [-Wunused-variable]")]
    attribute.warnings(added, repo, base, commits[-1], patches)
    assert [w.patch for w in added] == [2, None]   # line 3 is the base's
    assert compare.warning_lines(added, 2) == [
        "patch 2/2: kernel/x.c:4: unused variable 'unused' [-Wunused-variable]",
        "in an older line: kernel/x.c:3: unused variable 'old' [-Wunused-variable]"]


def test_a_comparison_written_with_warnings_as_text_still_loads(data_dir, tmp_path):
    doc = json.loads((data_dir / AB / "compare.json").read_text())
    doc["diff"]["warnings_added"] = ["kernel/trace/bpf_trace.c:2730: 'addr' set but not used [-Wunused-but-set-variable]"]
    (tmp_path / "compare.json").write_text(json.dumps(doc))
    (w,) = read_comparison(tmp_path).diff.warnings_added
    assert (w.file, w.line, w.patch) == ("kernel/trace/bpf_trace.c", 2730, None)
    assert w.message == "'addr' set but not used [-Wunused-but-set-variable]"
