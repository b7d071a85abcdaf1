"""The arch table is data: every row loads, names its packages, and has a fragment."""
import pathlib

import pytest

from orchestrator import arches
from orchestrator.errors import OrchestratorError
from orchestrator.guest import zigcc
from orchestrator.kernel.kconfig import parse_fragment

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
    assert (arm64.busybox.deb_arch, arm64.busybox.suite) == ("arm64", "bookworm")
    assert not any(p.startswith("busybox") for p in arm64.host_packages())
    assert "busybox-static" in arches.get_arch("x86_64").host_packages()
    # Every downloaded busybox names the suite it comes from: it comes through a private
    # apt source list, never by adding a dpkg architecture to the host.
    for arch in arches.load_table().values():
        assert bool(arch.busybox.deb_arch) == bool(arch.busybox.suite), arch.name


def test_select_all_and_lists():
    assert [a.name for a in arches.select("all")] == list(arches.load_table())
    assert [a.name for a in arches.select("arm64, x86_64")] == ["arm64", "x86_64"]


def test_zig_wrapper_drops_only_the_flags_zig_refuses():
    args = ["-static", "-Wl,--warn-common", "-Wl,--sort-common", "-Wl,--sort-section,alignment",
            "-Wl,-Map,busybox_unstripped.map", "-static-libgcc", "-Wl,--gc-sections,--start-group",
            "-o", "busybox_unstripped"]
    assert zigcc.filtered(args) == ["-static", "-Wl,--gc-sections,--start-group", "-o",
                                    "busybox_unstripped"]


def test_toolchain_override_changes_compiler_checks_and_build_dir(tmp_path):
    import pathlib as _p
    from orchestrator.kernel.build import build_dir_for
    from orchestrator.kernel.source import KernelTree
    from orchestrator.kernel.treeview import unshare_prefix
    arm64 = arches.get_arch("arm64")
    llvm = arches.with_toolchain(arm64, llvm="-19")
    assert llvm.compiler == "clang-19"
    assert llvm.make_vars() == ["ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-", "LLVM=-19"]
    assert llvm.toolchain["ld.lld-19"] == "lld-19" and "aarch64-linux-gnu-gcc" not in llvm.toolchain
    other = arches.with_toolchain(arm64, cross_compile="aarch64-none-linux-gnu-")
    assert other.toolchain["aarch64-none-linux-gnu-gcc"] == "gcc-aarch64-none-linux-gnu"
    tree = KernelTree(_p.Path("/src/linux"), "git:x", "6.12", "test", None)
    # Built in the tree view where this host allows one: a dir of its own (its .cmd files).
    view = "-view" if unshare_prefix() else ""
    assert build_dir_for(tmp_path, tree, arm64).name == "arm64" + view
    assert build_dir_for(tmp_path, tree, llvm).name.startswith("arm64-")
    assert build_dir_for(tmp_path, tree, llvm).name.endswith(view) and build_dir_for(tmp_path, tree, llvm).name != "arm64" + view
    assert arches.with_toolchain(arm64) is arm64


def test_matrix_table_from_real_runs(data_dir):
    import msgspec
    from orchestrator.matrix.run import Row, render
    from orchestrator.model import Stage, Stages
    from orchestrator.results.recorder import load_run
    run = load_run(data_dir / "runs" / "x86_64-base")   # 55 PASS, 1 FAIL, 1 ERROR, 1 UNSUPPORTED
    failed = Row("riscv64", 5, msgspec.structs.replace(
        run, state="failed", cases=[], splats=[], stages=Stages(build=Stage(state="failed", seconds=12.0))),
        "The riscv64 kernel build failed")
    lines = render([Row("x86_64", 1, run), failed, Row("s390x", 7, None, "no run")]).splitlines()
    assert lines[0].split() == ["arch", "build", "boot", "passed", "failed", "unsupported", "splats",
                                "minutes", "verdict"]
    assert lines[1].split()[:8] == ["x86_64", "reused", "1s", "55", "2", "1", "2", "2.3"]
    assert lines[1].endswith("2 failing case(s), 2 kernel splat(s)")
    assert lines[2].split()[:3] == ["riscv64", "FAILED", "-"]
    assert "The riscv64 kernel build failed" in lines[2]
    assert lines[3].split()[:8] == ["s390x", "-", "-", "0", "0", "0", "0", "-"]


def test_the_boot_nonce_goes_where_qemu_passes_a_command_line():
    """READY carries the boot's nonce from the kernel command line where QEMU passes one;
    the builtin route's command line is in the kernel, so QEMU gets no -append there and the
    session expects no nonce."""
    import io
    import pathlib
    from orchestrator.vm import qemu
    from orchestrator.vm.console import ConsoleSession
    accel = qemu.Accel("tcg", "test")
    get_arch = arches.get_arch
    direct = qemu.qemu_argv(get_arch("x86_64"), pathlib.Path("bzImage"), pathlib.Path("i.cpio"), accel)
    builtin = qemu.qemu_argv(get_arch("loongarch64"), pathlib.Path("vmlinux"), pathlib.Path("i.cpio"), accel)
    assert "-append" in direct and "-append" not in builtin and "-initrd" not in builtin
    for argv, nonce in ((["true", *direct[1:]], True), (["true", *builtin[1:]], False)):
        s = ConsoleSession(argv, io.BytesIO())
        s.start()
        s.kill()
        assert (s.ready_nonce == s.nonce) if nonce else s.ready_nonce is None


def test_a_first_build_expects_this_caches_count_else_the_tables_nearest(tmp_path):
    import dataclasses
    from orchestrator.kernel import build
    from orchestrator.kernel.source import KernelTree
    x86 = arches.get_arch("x86_64")

    def tree(version: str) -> KernelTree:
        return KernelTree(tmp_path, "t", version, "test", None)
    config = "CONFIG_FTRACE=y\n"
    assert build.first_build_steps(tmp_path, x86, tree("7.2.12"), config) == x86.build_steps["7.2"]
    # A newer mainline than the table knows: its nearest line; an older one likewise.
    assert build.first_build_steps(tmp_path, x86, tree("7.4.0-rc1"), config) == x86.build_steps["7.2"]
    assert build.first_build_steps(tmp_path, x86, tree("6.6.60"), config) == x86.build_steps["6.12"]
    # This cache's own first build of the same config wins over the table; another
    # config's count says nothing about this one.
    build._remember_steps(tmp_path, x86, tree("7.2.12"), config, 1999)
    assert build.first_build_steps(tmp_path, x86, tree("7.2.13"), config) == 1999
    assert build.first_build_steps(tmp_path, x86, tree("7.2.13"), config + "CONFIG_X=y\n") == x86.build_steps["7.2"]
    assert build.first_build_steps(tmp_path, dataclasses.replace(x86, name="other", build_steps={}),
                                   tree("7.2.1"), config) is None


def test_each_arch_runs_on_its_default_qemu_build_unless_one_is_asked_for():
    from orchestrator.vm import emulators
    for name in arches.load_table():
        chosen = arches.default_qemu(name)
        assert chosen is None or chosen in emulators.EMULATORS, (name, chosen)
        assert emulators.build_for(name, None) == (chosen or emulators.DEFAULT_EMULATOR)
        assert emulators.build_for(name, "debian") == "debian"
    groups = dict(emulators.by_build("all", None))
    assert sorted(a.name for g in groups.values() for a in g) == sorted(arches.load_table())
    # Each arch as the table has it on its build: loongarch64 on QEMU 10 boots directly.
    la = next(a for g in groups.values() for a in g if a.name == "loongarch64")
    assert la.boot_route == ("direct" if emulators.build_for("loongarch64", None) == "backports" else "builtin")
    assert [b for b, _ in emulators.by_build("x86_64,loongarch64", "debian")] == ["debian"]


def test_kbuilds_arch_names_are_aliases_of_the_rows():
    # ARCH=x86 / riscv / s390 / loongarch, as a kernel developer types them for kbuild.
    got = [a.name for a in arches.select("x86,riscv,s390,loongarch,arm64")]
    assert got == ["x86_64", "riscv64", "s390x", "loongarch64", "arm64"]
    # One arch named twice runs once.
    assert [a.name for a in arches.select("x86,x86_64")] == ["x86_64"]
    # Every alias is the row's own kbuild name (kernel_arch or srcarch), and names one row.
    table = arches.load_table()
    aliases = [(alias, a) for a in table.values() for alias in a.aliases]
    assert {alias for alias, _ in aliases} == {"x86", "riscv", "s390", "loongarch"}
    assert all(alias in (a.kernel_arch, a.srcarch) and alias not in table for alias, a in aliases)
    assert len({alias for alias, _ in aliases}) == len(aliases)


def test_one_cells_unexpected_error_costs_that_cell_only(tmp_path, monkeypatch, capsys):
    """A bug of ours in one cell (an exception that is no OrchestratorError): the other cells
    still run, the table and the page are written, the exit code says infrastructure."""
    from orchestrator import pipeline
    from orchestrator.matrix import run as matrix
    from orchestrator.progress import Progress
    from orchestrator.results.recorder import load_run
    done = load_run(pathlib.Path(__file__).parent / "data" / "runs" / "arm64")
    calls = []

    def run_test(opts, progress, ctx=None):
        calls.append(opts.arch)
        if opts.arch == "x86_64":
            raise KeyError("a bug")
        return 0, done
    monkeypatch.setattr(pipeline, "run_test", run_test)
    base = pipeline.TestOptions(arch="x86_64", results_root=tmp_path)
    from orchestrator.arches import get_arch
    code = matrix.run([get_arch("x86_64"), get_arch("arm64")], base, Progress())
    out = capsys.readouterr()
    assert calls == ["x86_64", "arm64"] and code == 7
    table = out.out.splitlines()
    assert any(l.startswith("x86_64") and "internal error: KeyError" in l for l in table)
    assert any(l.startswith("arm64") for l in table)
    assert list(tmp_path.glob("matrix-*.json")) and list(tmp_path.glob("matrix-*.html"))


@pytest.mark.parametrize("cores,guests,mode", [(2, 1, "multi"), (2, 2, "single"), (4, 2, "multi"), (1, 1, "single")])
def test_tcg_gives_each_vcpu_a_thread_only_where_the_cores_hold_them(monkeypatch, cores, guests, mode):
    """Two guests of two vCPUs on two cores: one thread per guest, not four threads
    waiting on each other; a guest keeps its two vCPUs either way. KVM gets no TCG flag."""
    import pathlib
    from orchestrator.vm import qemu
    monkeypatch.setattr(qemu.os, "sched_getaffinity", lambda pid: set(range(cores)))
    x86 = arches.get_arch("x86_64")
    argv = qemu.qemu_argv(x86, pathlib.Path("bzImage"), None, qemu.Accel("tcg", "test"), guests=guests)
    assert argv[argv.index("-accel") + 1] == f"tcg,thread={mode}"
    assert argv[argv.index("-smp") + 1] == str(x86.qemu.smp) == "2"
    kvm = qemu.qemu_argv(x86, pathlib.Path("bzImage"), None, qemu.Accel("kvm", "test"), guests=guests)
    assert kvm[kvm.index("-accel") + 1] == "kvm"


def test_an_arch_whose_guests_hang_on_one_thread_keeps_a_thread_per_vcpu(monkeypatch):
    """riscv64's tracer switching never returned with thread=single (00basic/basic2.tc):
    two guests on two cores still get a thread per vCPU there, and x86_64 does not."""
    import pathlib
    from orchestrator.vm import qemu
    monkeypatch.setattr(qemu.os, "sched_getaffinity", lambda pid: {0, 1})
    modes = {}
    for name in ("riscv64", "x86_64"):
        argv = qemu.qemu_argv(arches.get_arch(name), pathlib.Path("Image"), None, qemu.Accel("tcg", "test"), guests=2)
        modes[name] = argv[argv.index("-accel") + 1]
    assert modes == {"riscv64": "tcg,thread=multi", "x86_64": "tcg,thread=single"}


def test_a_failed_kvm_probe_says_why_in_whole_words(tmp_path):
    """The probe's reason is QEMU's last line: cut at a word, never "...faile"."""
    import dataclasses
    import pathlib
    from orchestrator.vm import qemu
    fake = tmp_path / "qemu"
    said = "qemu-system-x86_64: " + " ".join(["failed to initialize kvm: permission denied"] * 5)
    fake.write_text(f"#!/bin/sh\necho '{said}'\n")
    fake.chmod(0o755)
    x86 = arches.get_arch("x86_64")
    arch = dataclasses.replace(x86, qemu=dataclasses.replace(x86.qemu, binary=str(fake)))
    ok, detail = qemu._probe(arch, pathlib.Path("bzImage"))
    shown = detail.removesuffix(f" within {qemu.PROBE_SECONDS:.0f}s")
    assert not ok and shown.endswith("...") and len(shown) <= 120
    assert said.startswith(shown.removesuffix("...")) and shown.removesuffix("...").split()[-1] in said.split()


def test_a_row_with_a_busybox_deb_arch_but_no_suite_is_refused():
    row = dict(arches._rows()["arm64"], busybox={"package": "busybox-static", "deb_arch": "arm64"})
    with pytest.raises(OrchestratorError, match="deb_arch without its suite"):
        arches._arch_from_row("arm64", row)
