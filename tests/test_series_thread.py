"""A series as a thread from the list, read by b4 am (series/thread.py): the newest
revision whole and in order, the replies' trailers on their patches (a reply to the cover
on all of them), the cover's subject and Message-ID for the reply; a missing patch and an
unreachable Message-ID are one sentence each. The mboxes in tests/data/threads were
written for these tests: two revisions, replies quoting diffs, a v1 comment, an ack."""
from __future__ import annotations

import gzip
import pathlib

import pytest

from orchestrator.errors import ExitCode, OrchestratorError
from orchestrator.series import patches, thread

THREADS = pathlib.Path(__file__).parent / "data" / "threads"


def test_the_newest_revision_with_its_trailers():
    series = patches.load(str(THREADS / "two-revisions.mbox"), None)
    assert series.kind == "thread"
    assert [p.subject for p in series.patches] == ["[PATCH v2 1/2] tracing: one",
                                                   "[PATCH v2 2/2] tracing: two, better"]
    assert [p.number for p in series.patches] == [1, 2]
    assert [p.message_id for p in series.patches] == ["v2-1@example.org", "v2-2@example.org"]
    first, second = (p.raw.decode() for p in series.patches)
    # The review of patch 1 on patch 1 only; the ack on the cover on both.
    assert "Reviewed-by: A Reviewer <reviewer@example.org>" in first
    assert "Reviewed-by" not in second
    assert all("Acked-by: A Maintainer <maintainer@example.org>" in t for t in (first, second))
    # v1's patch and the comment on it are not in what is applied; nor the quoted diff.
    assert "+two\n" not in second and "breaks the build" not in first + second
    assert series.patches[1].files == ["g.c"] and series.patches[0].files == ["f.c"]
    assert series.cover_subject == "[PATCH v2 0/2] tracing/probes: Two small changes"
    assert series.cover_message_id == "v2-0@example.org"


def test_lores_gzipped_thread_reads_the_same(tmp_path):
    gz = tmp_path / "t.mbox.gz"
    gz.write_bytes(gzip.compress((THREADS / "two-revisions.mbox").read_bytes()))
    series = patches.load(str(gz), None)
    assert [p.message_id for p in series.patches] == ["v2-1@example.org", "v2-2@example.org"]


def test_a_missing_patch_is_one_sentence_naming_it():
    with pytest.raises(patches.SeriesError) as exc:
        patches.load(str(THREADS / "v2-missing-2.mbox"), None)
    assert exc.value.code == ExitCode.BAD_INPUT
    assert "lacks patch 2/2 of its v2 (b4 found 1 of 2)" in exc.value.message


def test_a_plain_series_mbox_is_not_a_thread():
    text = (THREADS / "two-revisions.mbox").read_text()
    # v2's cover and patches alone, as `b4 am` or `git format-patch --stdout` writes them.
    v2 = text[text.index("From 1f866166c6d6c1a2035bed996bf8c3e3846b3166"):text.index("From nobody", text.index("[PATCH v2 2/2]"))]
    msgs = patches.split_mbox(v2.encode())
    parsed = [patches._parse_message(m, "m") for m in msgs]
    assert not thread.is_thread([(subject, p is not None) for p, subject, _ in parsed])


def test_what_series_names_a_message_id():
    assert thread.message_id_of("<20261201-fprobe-v4-0-abc@kernel.org>") == "20261201-fprobe-v4-0-abc@kernel.org"
    assert thread.message_id_of("20261201-fprobe-v4-0-abc@kernel.org") == "20261201-fprobe-v4-0-abc@kernel.org"
    assert thread.message_id_of("https://lore.kernel.org/linux-trace-kernel/20261201.abc@kernel.org/") == "20261201.abc@kernel.org"
    assert thread.message_id_of("https://lore.kernel.org/all/20261201.abc@kernel.org/T/#t") == "20261201.abc@kernel.org"
    assert thread.message_id_of("https://patch.msgid.link/20261201.abc@kernel.org") == "20261201.abc@kernel.org"
    for not_one in ("v6.12..HEAD", "HEAD@{1}", "origin/master", "series.mbx"):
        assert thread.message_id_of(not_one) is None, not_one


def test_an_unreachable_message_id_is_one_sentence():
    # No DNS for .invalid anywhere: b4 cannot fetch it, whatever the network allows.
    with pytest.raises(OrchestratorError) as exc:
        patches.load("<no-such-thread@example.invalid>", None)
    msg = exc.value.message
    assert msg.startswith("b4 could not fetch the thread of <no-such-thread@example.invalid> (")
    assert "https://lore.kernel.org/all/no-such-thread@example.invalid/t.mbox.gz" in msg
    assert "\n" not in msg
