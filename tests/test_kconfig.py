"""Fragment parsing and the asked-vs-got comparison, on real .config files produced by
the 6.12 tree's allnoconfig and on that tree's real Kconfig files."""
import pathlib

import pytest

from orchestrator.kernel import kconfig
from orchestrator.errors import ExitCode, OrchestratorError

REPO = pathlib.Path(__file__).resolve().parent.parent


def _compare(data_dir, kconfig_tree, name, srcarch):
    merged = kconfig.merge([data_dir / f"{name}.fragment"])
    got = kconfig.read_dotconfig(data_dir / f"{name}.config")
    return {d.option: d for d in kconfig.compare(merged, got, kconfig_tree, srcarch)}


def test_fragment_lines_and_required_marks(tmp_path):
    f = tmp_path / "a.config"
    f.write_text('# comment\n\nCONFIG_A=y   # required\nCONFIG_B=m\n# CONFIG_C is not set\n'
                 'CONFIG_S="x # not a comment"  # required: yes\nCONFIG_N=0x10\n')
    opts = {o.name: o for o in kconfig.parse_fragment(f)}
    assert [(o.value, o.required) for o in opts.values()] == [
        ("y", True), ("m", False), ("n", False), ('"x # not a comment"', True), ("0x10", False)]
    assert opts["CONFIG_A"].source == "a.config:3"


def test_malformed_line_is_bad_input_naming_file_and_line(tmp_path):
    f = tmp_path / "bad.config"
    f.write_text("CONFIG_A=y\nFTRACE=y\n")
    with pytest.raises(OrchestratorError) as exc:
        kconfig.parse_fragment(f)
    assert exc.value.code == ExitCode.BAD_INPUT
    assert f"{f}:2" in exc.value.message and "CONFIG_NAME=value" in exc.value.message


def test_later_fragment_wins_and_required_sticks(tmp_path):
    a, b = tmp_path / "a.config", tmp_path / "b.config"
    a.write_text("CONFIG_A=y  # required\nCONFIG_B=y\n")
    b.write_text("CONFIG_A=y\n# CONFIG_B is not set\n")
    merged = kconfig.merge([a, b])
    assert merged["CONFIG_A"].required and merged["CONFIG_B"].value == "n"
    assert kconfig.render_allconfig(merged) == "CONFIG_A=y\n# CONFIG_B is not set\n"


def test_the_project_fragments_parse():
    for f in sorted((REPO / "kconfigs").glob("*.config")):
        assert kconfig.parse_fragment(f), f


def test_real_x86_64_config_holds_everything_the_project_asks(data_dir, kconfig_tree):
    merged = kconfig.merge([data_dir / "x86_64-6.12.117.allconfig"])
    got = kconfig.read_dotconfig(data_dir / "x86_64-6.12.117.config")
    assert kconfig.compare(merged, got, kconfig_tree, "x86") == []


def test_dropped_options_are_explained(data_dir, kconfig_tree):
    d = _compare(data_dir, kconfig_tree, "x86_64-no-debug-kernel", "x86")
    assert set(d) == {"CONFIG_EPROBE_EVENTS", "CONFIG_KALLSYMS_ALL", "CONFIG_DEBUG_INFO_BTF",
                      "CONFIG_DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT", "CONFIG_PROBE_EVENTS_BTF_ARGS"}
    assert d["CONFIG_KALLSYMS_ALL"].kind == "dropped"
    assert d["CONFIG_KALLSYMS_ALL"].reason == "depends on DEBUG_KERNEL [=n] && KALLSYMS [=y]"
    assert d["CONFIG_EPROBE_EVENTS"].kind == "undefined"
    assert d["CONFIG_PROBE_EVENTS_BTF_ARGS"].reason == \
        "depends on DEBUG_INFO_BTF [=n] && BPF_SYSCALL [=y]"
    assert all(not x.required for x in d.values())
    kconfig.check_required(list(d.values()))  # nothing required was lost: no error


def test_what_the_arch_cannot_give_is_not_a_mistake(data_dir, kconfig_tree):
    d = _compare(data_dir, kconfig_tree, "arm64-fprobe", "arm64")
    assert set(d) == {"CONFIG_FPROBE", "CONFIG_FPROBE_EVENTS"}
    assert d["CONFIG_FPROBE"].kind == "unavailable"
    assert "HAVE_RETHOOK [=n]" in d["CONFIG_FPROBE"].reason
    assert d["CONFIG_FPROBE_EVENTS"].kind == "unavailable"


def test_missing_required_option_fails_the_config_stage(data_dir, kconfig_tree, tmp_path):
    frag = tmp_path / "f.config"
    frag.write_text((data_dir / "arm64-fprobe.fragment").read_text().replace(
        "CONFIG_FPROBE=y", "CONFIG_FPROBE=y  # required"))
    merged = kconfig.merge([frag])
    dropped = kconfig.compare(merged, kconfig.read_dotconfig(data_dir / "arm64-fprobe.config"),
                              kconfig_tree, "arm64")
    with pytest.raises(kconfig.ConfigFailed) as exc:
        kconfig.check_required(dropped)
    assert exc.value.code == ExitCode.CONFIG_FAILED
    assert "CONFIG_FPROBE (depends on DYNAMIC_FTRACE_WITH_REGS [=n]; HAVE_RETHOOK [=n])" in exc.value.message


def test_riscv64_limits_of_6_12_are_unavailable_not_dropped(data_dir, kconfig_tree):
    d = _compare(data_dir, kconfig_tree, "riscv64-6.12.117", "riscv")
    assert set(d) == {"CONFIG_KPROBES_ON_FTRACE", "CONFIG_FPROBE", "CONFIG_HIST_TRIGGERS"}
    assert {x.kind for x in d.values()} == {"unavailable"}
    assert "HAVE_KPROBES_ON_FTRACE [=n]" in d["CONFIG_KPROBES_ON_FTRACE"].reason
    assert d["CONFIG_HIST_TRIGGERS"].reason == "depends on ARCH_HAVE_NMI_SAFE_CMPXCHG [=n]"


def test_what_an_older_pahole_costs_the_trees_btf(tmp_path):
    from conftest import extract_from_tarball
    from orchestrator.kernel import pahole
    top = extract_from_tarball(tmp_path, "--wildcards", "*/scripts/Makefile.btf")
    got = pahole.notes(top, have=124)        # bookworm's dwarves
    assert [n.split(":")[0] for n in got] == ["pahole 1.24 < 1.25", "pahole 1.24 < 1.26"]
    assert "BTF-typed probe argument" in got[0]
    assert pahole.notes(top, have=126) == [] and pahole.notes(tmp_path, have=124) == []
