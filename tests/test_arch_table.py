"""The arch table is data: every row loads, names its packages, and has a fragment."""
import pathlib

from orchestrator import arches, zigcc
from orchestrator.kconfig import parse_fragment

REPO = pathlib.Path(__file__).resolve().parent.parent


def test_every_row_loads_and_has_a_console_fragment():
    table = arches.load_table()
    assert "x86_64" in table
    for name, arch in table.items():
        frag = REPO / "kconfigs" / f"{name}.config"
        required = {o.name for o in parse_fragment(frag) if o.required}
        assert required, f"{frag} marks no option required (at least the console)"
        assert arch.qemu.binary.startswith("qemu-system-")
        assert arch.qemu.package in arch.host_packages()


def test_foreign_busybox_is_downloaded_not_installed():
    arm64 = arches.get_arch("arm64")
    assert arm64.busybox.deb_arch == "arm64"
    assert not any(p.startswith("busybox") for p in arm64.host_packages())
    assert "busybox-static" in arches.get_arch("x86_64").host_packages()


def test_select_all_and_lists():
    assert [a.name for a in arches.select("all")] == list(arches.load_table())
    assert [a.name for a in arches.select("arm64, x86_64")] == ["arm64", "x86_64"]


def test_zig_wrapper_drops_only_the_flags_zig_refuses():
    args = ["-static", "-Wl,--warn-common", "-Wl,--sort-common", "-Wl,--sort-section,alignment",
            "-Wl,-Map,busybox_unstripped.map", "-static-libgcc", "-Wl,--gc-sections,--start-group",
            "-o", "busybox_unstripped"]
    assert zigcc.filtered(args) == ["-static", "-Wl,--gc-sections,--start-group", "-o",
                                    "busybox_unstripped"]
