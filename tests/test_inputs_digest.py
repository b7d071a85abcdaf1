"""A base run is reused (and a case's history kept) only for the same inputs: every
option and host tool that decides a run's results changes pipeline.inputs_digest, and
nothing else does."""
from __future__ import annotations

import dataclasses
import pathlib
import os

import pytest

from orchestrator import hosttools, pipeline


@pytest.fixture
def base():
    return pipeline.TestOptions(arch="x86_64")


def test_the_same_inputs_give_the_same_digest(base, tmp_path):
    again = pipeline.TestOptions(arch="x86_64", results_root=tmp_path / "elsewhere")
    assert pipeline.inputs_digest(base) == pipeline.inputs_digest(again)


@pytest.mark.parametrize("change", [
    {"transport": "ssh"}, {"boot_timeout": 181.0}, {"case_timeout": 299.0},
    {"cmdline": "nokaslr"}, {"suites": ["dynevent"]}, {"arch": "arm64"}, {"llvm": "-19"},
])
def test_each_option_that_decides_results_changes_it(base, change):
    assert pipeline.inputs_digest(dataclasses.replace(base, **change)) != pipeline.inputs_digest(base)


def test_the_tcscripts_cases_are_part_of_it(base, tmp_path):
    (tmp_path / "a.tc").write_text("#!/bin/sh\nexit 0\n")
    mine = dataclasses.replace(base, tcscripts=tmp_path)
    first = pipeline.inputs_digest(mine)
    (tmp_path / "a.tc").write_text("#!/bin/sh\nexit 1\n")
    assert pipeline.inputs_digest(mine) != first


@pytest.mark.parametrize("tool", ["qemu-system-x86_64", "gcc"])
def test_another_qemu_or_compiler_on_the_path_changes_it(base, tmp_path, monkeypatch, tool):
    """As when QEMU 10 from backports or another gcc is installed: a tool of the same name
    that says another version first on PATH."""
    before = pipeline.inputs_digest(base)
    fake = tmp_path / tool
    fake.write_text("#!/bin/sh\necho 'another version 99.1'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    hosttools.version_line.cache_clear()
    try:
        assert pipeline.inputs_digest(base) != before
    finally:
        hosttools.version_line.cache_clear()


def test_a_case_file_made_executable_changes_it(base, tmp_path):
    """The image applies the files' modes: a `chmod +x` fix to a case is a new image."""
    (tmp_path / "a.tc").write_text("#!/bin/sh\nexit 0\n")
    mine = dataclasses.replace(base, tcscripts=tmp_path)
    first = pipeline.inputs_digest(mine)
    (tmp_path / "a.tc").chmod(0o755)
    assert pipeline.inputs_digest(mine) != first


@pytest.mark.parametrize("field, value", [("machine", "pc"), ("cpu", "qemu64"), ("memory", "2G"), ("smp", 4),
                                          ("extra_args", ("-device", "virtio-rng-pci"))])
def test_the_arch_tables_qemu_changes_it(base, monkeypatch, field, value):
    """The QEMU machine, CPU, memory, SMP and arguments of the arch's table row."""
    from orchestrator import run_inputs
    before = pipeline.inputs_digest(base)
    real = run_inputs.arch_of

    def changed(opts):
        arch = real(opts)
        return dataclasses.replace(arch, qemu=dataclasses.replace(arch.qemu, **{field: value}))
    monkeypatch.setattr(run_inputs, "arch_of", changed)
    assert pipeline.inputs_digest(base) != before


def test_the_arch_tables_kernel_command_line_changes_it(base, monkeypatch):
    from orchestrator import run_inputs
    before = pipeline.inputs_digest(base)
    real = run_inputs.arch_of
    monkeypatch.setattr(run_inputs, "arch_of", lambda opts: dataclasses.replace(real(opts), cmdline="nosmp"))
    assert pipeline.inputs_digest(base) != before


def test_the_selected_cases_change_it(base):
    assert pipeline.inputs_digest(dataclasses.replace(base, cases=("kprobe/*",))) != pipeline.inputs_digest(base)


def test_the_accelerator_counts_as_the_run_will_get_it(base, monkeypatch):
    """`auto` where KVM cannot run is TCG: the same inputs as `tcg`. Where /dev/kvm is
    usable, a run under `auto` may get KVM: not the inputs of a TCG run."""
    from orchestrator.vm import qemu
    tcg = dataclasses.replace(base, accel="tcg")
    monkeypatch.setattr(qemu.os, "access", lambda path, mode: False)
    assert pipeline.inputs_digest(base) == pipeline.inputs_digest(tcg)
    monkeypatch.setattr(qemu.os, "access", lambda path, mode: path == "/dev/kvm")
    monkeypatch.setattr(qemu.platform, "machine", lambda: "x86_64")
    assert pipeline.inputs_digest(base) != pipeline.inputs_digest(tcg)
    assert pipeline.inputs_digest(dataclasses.replace(base, accel="kvm")) != pipeline.inputs_digest(base)


@pytest.mark.parametrize("module", ["busybox", "gawk"])
def test_the_userland_recipe_changes_it(base, monkeypatch, tmp_path, module):
    """The guest's shell and awk are built from source by these modules' recipes: another
    recipe is another guest, so a base run made with the older one is not reused."""
    import importlib
    mod = importlib.import_module(f"orchestrator.guest.{module}")
    before = pipeline.inputs_digest(base)
    copy = tmp_path / f"{module}.py"
    copy.write_text(pathlib.Path(mod.__file__).read_text() + "\n# another recipe\n")
    monkeypatch.setattr(mod, "__file__", str(copy))
    assert pipeline.inputs_digest(base) != before
