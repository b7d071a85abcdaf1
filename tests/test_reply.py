"""--reply: the tester's mail to the series' thread, from a real comparison (x86_64 6.12,
a v2 series that breaks two cases) and its summary text."""
import email

from msgspec.structs import replace

from orchestrator.model import bare_subject
from orchestrator.results.recorder import read_comparison
from orchestrator.series import reply

AB = "ab-x86_64-v2"


def _compare(data_dir):
    return read_comparison(data_dir / AB), (data_dir / AB / "summary.txt").read_text()


def _clean(cmp, **series):
    """The comparison as if the series had broken nothing (and its series fields changed)."""
    return replace(cmp, diff=replace(cmp.diff, new_failures=[], regressed=False), series=replace(cmp.series, **series))


def test_a_regressed_series_gets_the_failures_and_no_tested_by(data_dir):
    cmp, summary = _compare(data_dir)
    text = reply.render([cmp], [summary], "A Tester <tester@example.org>")
    msg = email.message_from_string(text)
    assert msg["Subject"] == "Re: [PATCH v2 0/3] tracing: probe argument fixes"
    assert "  x86_64  regressed: new failures\n" in text
    first = cmp.series.patches[0].message_id     # no cover Message-ID recorded: patch 1
    assert msg["In-Reply-To"] == f"<{first}>" and msg["References"] == f"<{first}>"
    assert msg["From"] == "A Tester <tester@example.org>"
    body = msg.get_payload()
    assert "dynevent/add_remove_kprobe.tc: first bad patch 3/3" in body
    assert "Tested-by:" not in body and "regresses on x86_64" in body


def test_a_clean_series_is_tested_by_and_answers_the_cover_letter(data_dir):
    cmp, summary = _compare(data_dir)
    clean = _clean(cmp, cover_message_id="cover.1795389852.git.demo@example.org")
    msg = email.message_from_string(reply.render([clean], [summary], "A Tester <tester@example.org>"))
    assert msg["In-Reply-To"] == "<cover.1795389852.git.demo@example.org>"
    assert msg.get_payload().rstrip().endswith("Tested-by: A Tester <tester@example.org>")
    without = reply.render([clean], [summary], None)
    assert "Tested-by:" not in without.replace("No Tested-by:", "") and "git config user.name" in without


def test_an_arch_that_ended_before_its_comparison_withholds_tested_by(data_dir):
    cmp, summary = _compare(data_dir)
    clean = _clean(cmp)
    why = "The arm64 kernel build failed after 41s: kernel/trace/trace_kprobe.c:938: error: 'x' undeclared"
    msg = email.message_from_string(reply.render([clean], [summary], "A Tester <tester@example.org>",
                                                 [("arm64", why)]))
    body = " ".join(msg.get_payload().split())      # as read, whatever the wrapping
    assert "I ran the series on x86_64, arm64 in QEMU" in body
    assert f"arm64: no comparison: {why}" in body
    # Every arch on one line first, as the robots' reports open.
    table = msg.get_payload().split("\n\n")[2].splitlines()
    assert [l.split()[0] for l in table] == ["arch", "x86_64", "arm64"], table
    assert table[1].split(None, 1)[1] == "no difference" and "no comparison" in table[2]
    assert "Tested-by:" not in body and "So no Tested-by from me yet: arm64 got no comparison (above)." in body


def test_the_reply_goes_to_all_in_the_thread_wrapped_for_mail(data_dir):
    cmp, summary = _compare(data_dir)
    cmp = replace(cmp, series=replace(
        cmp.series, cover_message_id="cover.1795389852.git.demo@example.org",
        mail_from="Dev Eloper <dev@example.org>",
        mail_cc=["linux-trace-kernel@vger.kernel.org", "A Tester <tester@example.org>",
                 "Evil <evil@example.org>\nBcc: all@example.org"]))
    text = reply.render([cmp], [summary + "    " + "x" * 30 + " " + "y " * 60 + "\n"], "A Tester <tester@example.org>")
    msg = email.message_from_string(text)
    assert msg["To"] == "Dev Eloper <dev@example.org>"
    assert msg["In-Reply-To"] == msg["References"] == "<cover.1795389852.git.demo@example.org>"
    # Everyone it went to but ourselves; a header smuggled in an address is one line, no header.
    assert msg["Cc"].startswith("linux-trace-kernel@vger.kernel.org, Evil <evil@example.org> Bcc:")
    assert msg["Bcc"] is None and "tester@example.org" not in msg["Cc"]
    body = msg.get_payload()
    assert all(len(line) <= 80 for line in body.splitlines()), max(body.splitlines(), key=len)
    assert "patch(es)" not in body


def _with_checks_and_a_patch_that_does_not_build(cmp, arch):
    from orchestrator.model import EachPatch, FirstFailing, PatchCheck, SeriesFailed
    checks = [PatchCheck(number=1, subject=cmp.series.patches[0].subject,
                         summary="total: 1 errors, 0 warnings, 0 checks, 8 lines checked",
                         errors=1, findings=["ERROR:MISSING_SIGN_OFF: Missing Signed-off-by: line(s)"])]
    error = ("arch/arm64/kernel/probes/kprobes.c:115:13: error: implicit declaration of function "
             "'arm64_probe_in_xol_slot' [-Werror=implicit-function-declaration]")
    diff = replace(cmp.diff, new_failures=[], regressed=True,
                   series_failed=SeriesFailed(stage="build", why=error))
    each = EachPatch(mode="build", built=0, first_failing=FirstFailing(
        number=1, subject=cmp.series.patches[0].subject, error=error))
    return replace(cmp, arch=arch, diff=diff, each_patch=each, series=replace(cmp.series, checkpatch=checks))


def test_a_patch_that_does_not_build_is_named_and_the_checks_are_shown_once(data_dir, tmp_path):
    """Two arches' comparison dirs, as a series run leaves them: the table names the patch
    that does not build; checkpatch's findings (the same patches on every arch) come once."""
    import shutil
    from orchestrator.results.recorder import write_comparison
    cmp, _ = _compare(data_dir)
    dirs = []
    broken = _with_checks_and_a_patch_that_does_not_build(cmp, "arm64")
    for arch, comparison in (("x86_64", replace(_clean(cmp), series=broken.series)), ("arm64", broken)):
        d = tmp_path / f"{arch}-compare"
        shutil.copytree(data_dir / AB, d)
        write_comparison(d, comparison)
        dirs.append(d)
    text = reply.write(tmp_path / "mail.txt", dirs)
    body = email.message_from_string(text).get_payload()
    assert "  arm64   regressed: patch 1/3 does not build\n" in body, body
    assert body.count("ERROR:MISSING_SIGN_OFF") == 1 and body.count("checkpatch --strict, per patch") == 1
    # The compiler's line whole (cut at a word, if ever), and the patch without its tag.
    joined = " ".join(body.split())
    assert "[-Werror=implicit-function-declaration]" in joined
    bare = bare_subject(cmp.series.patches[0].subject)
    assert bare != cmp.series.patches[0].subject and f"patch 1 ({bare}) does not build" in joined
