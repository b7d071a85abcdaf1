"""`deps` adds deb-src twins of the machine's deb822 sources (busybox's source package):
written whole, a file cut short by an earlier write is written again, and a machine with
no deb822 source gets one sentence."""
from __future__ import annotations

import pathlib
import shutil

import pytest

from orchestrator.cli import deps
from orchestrator.errors import OrchestratorError

HOST_SOURCES = pathlib.Path("/etc/apt/sources.list.d/debian.sources")


@pytest.fixture
def sources(tmp_path):
    if not HOST_SOURCES.is_file():
        pytest.skip("this host has no deb822 debian.sources")
    shutil.copy(HOST_SOURCES, tmp_path / "debian.sources")
    return tmp_path


def test_written_once_then_left_alone(sources):
    out = sources / "orchestrator-deb-src.sources"
    said = []
    assert deps._ensure_deb_src(said.append, sources, out) is True
    text = out.read_text()
    assert "Types: deb-src" in text and "Types: deb\n" not in text and said == [f"deps: writing {out}"]
    assert deps._ensure_deb_src(said.append, sources, out) is False and out.read_text() == text
    assert sorted(p.name for p in sources.iterdir()) == ["debian.sources", out.name]   # no temp file left


def test_a_file_cut_short_is_written_again(sources):
    out = sources / "orchestrator-deb-src.sources"
    deps._ensure_deb_src(lambda _: None, sources, out)
    whole = out.read_text()
    out.write_text(whole[: len(whole) // 2])
    assert deps._ensure_deb_src(lambda _: None, sources, out) is True
    assert out.read_text() == whole


def test_no_deb822_source_is_one_sentence(tmp_path):
    with pytest.raises(OrchestratorError, match="No deb822 apt source found"):
        deps._ensure_deb_src(lambda _: None, tmp_path, tmp_path / "out.sources")


def test_apt_output_goes_to_the_log_and_the_terminal_gets_one_line(tmp_path, capfd):
    """`make deps` printed dpkg's whole unpacking log; now each step is one line and its
    output lands in the cache's deps.log, whose end is quoted when the step fails."""
    import pytest
    from orchestrator.cli import deps
    from orchestrator.errors import OrchestratorError
    said = []
    log = deps.log_path(tmp_path)
    deps._run(["sh", "-c", "for i in 1 2 3; do echo Unpacking package$i ...; done"], said.append, log)
    with pytest.raises(OrchestratorError) as err:
        deps._run(["sh", "-c", "echo Reading package lists; echo 'E: Unable to locate package nope' >&2; exit 100"],
                  said.append, log)
    out = capfd.readouterr()
    assert "Unpacking" not in out.out + out.err and len(said) == 2 and said[0].startswith("deps: sh -c")
    text = log.read_text()
    assert "Unpacking package3 ..." in text and "E: Unable to locate package nope" in text
    assert "exit 100" in err.value.message and "E: Unable to locate package nope" in err.value.message
    assert str(log) in err.value.message
