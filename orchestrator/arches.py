"""Loads the arch table (data/arches.yaml) into frozen dataclasses."""
from __future__ import annotations

import dataclasses
import functools
from importlib import resources
from typing import Mapping

import yaml

from .errors import ExitCode, OrchestratorError


@dataclasses.dataclass(frozen=True)
class QemuSpec:
    binary: str
    package: str
    machine: str
    cpu: str
    memory: str
    smp: int
    bios: str | None
    extra_args: tuple[str, ...]
    # TCG with one host thread per vCPU (-accel tcg,thread=multi): only where QEMU's
    # emulation of the arch is correct that way (it warns and may misbehave elsewhere).
    mttcg: bool = False
    # Whether the guest may take one thread for all its vCPUs (thread=single) when guests
    # running at once leave no core per vCPU (vm/qemu.py: tcg_threads); False keeps a
    # thread per vCPU however many guests run.
    tcg_single: bool = True


@dataclasses.dataclass(frozen=True)
class KvmSpec:
    cpu: str
    host_machines: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class BusyboxSpec:
    """Where the guest's static busybox comes from: the host's own binary (`path`),
    Debian's package for another architecture (`deb_arch`) from the Debian `suite` that
    has it (bookworm's for arm64, trixie's for riscv64), downloaded through a private apt
    source list (debsuite.py: the host's apt sources and dpkg architectures stay as they
    are) and unpacked into the cache, or Debian's busybox source built with zig's musl for
    the arch's `zig` target (`from_source`)."""
    package: str
    path: str | None = None
    deb_arch: str | None = None
    suite: str | None = None     # with deb_arch, and only then: the suite it comes from
    from_source: bool = False


@dataclasses.dataclass(frozen=True)
class ZigSpec:
    """What zig's clang builds the guest's userland from source for (the shell, dropbear,
    a from_source busybox): its target triple, with musl, and -mcpu."""
    target: str
    cpu: str | None = None   # None: the target's default


@dataclasses.dataclass(frozen=True)
class BuiltinDtbSpec:
    """The device tree the "builtin" boot route builds into the kernel: a template in
    images/ and the machine's RAM layout, which the memory node must match for -m."""
    template: str
    low_ram: tuple[int, int]     # [start, end) of RAM in the low window
    low_window: int              # how much of -m the low window takes
    high_base: int               # where the rest of -m is mapped


@dataclasses.dataclass(frozen=True)
class SshSpec:
    """The SSH transport on this arch: the guest's network card (a QEMU -device); its
    static dropbear is built for the arch's `zig` target."""
    net_device: str


@dataclasses.dataclass(frozen=True)
class Arch:
    name: str
    kernel_arch: str
    srcarch: str
    cross_compile: str
    llvm: str | None
    toolchain: Mapping[str, str]
    build_target: str
    kernel_image: str
    qemu: QemuSpec
    kvm: KvmSpec
    console: str
    cmdline: str
    busybox: BusyboxSpec
    zig: ZigSpec
    halt_command: str | None
    packages: tuple[str, ...]   # Debian packages beyond toolchain/qemu/busybox
    # "direct": QEMU -kernel/-initrd/-append. "builtin": DTB (command line inside) and
    # initramfs built into the kernel, for machines QEMU cannot direct-boot (guest/bootroute.py).
    # The target triple for clang (--target) when the arch is built with LLVM.
    triple: str = ""
    # What the arch puts before a syscall's name in its entry function
    # (__x64_sys_getpid): the BPF checks in the guest probe those by name.
    syscall_prefix: str = "sys_"
    # Extra compiler flags for the guest programs (guest/guestprog.py), e.g. an ISA level
    # QEMU emulates.
    guest_cflags: tuple[str, ...] = ()
    boot_route: str = "direct"
    builtin_dtb: BuiltinDtbSpec | None = None   # for "builtin"
    ssh: SshSpec | None = None       # None: this arch has no SSH transport
    # Kernel version line ("7.2") -> kbuild steps of a first build of the default config,
    # measured here: the progress estimate of a first build before this cache has one.
    build_steps: Mapping[str, int] = dataclasses.field(default_factory=dict)
    # Other names the row answers to: kbuild's ARCH and arch/ names (x86, riscv, s390...).
    aliases: tuple[str, ...] = ()

    def host_packages(self) -> list[str]:
        """Every Debian package this arch needs on the host (what `deps` installs)."""
        pkgs = [*self.toolchain.values(), self.qemu.package, *self.packages]
        # A foreign busybox-static is downloaded, never installed: it would replace the host's.
        # dpkg-source, to unpack busybox's source package: the guest's shell is built from
        # it (guest/busybox.py), and so is a from_source busybox.
        pkgs.append("dpkg-dev")
        if not self.busybox.from_source and self.busybox.deb_arch is None:
            pkgs.append(self.busybox.package)
        return list(dict.fromkeys(pkgs))

    def make_vars(self) -> list[str]:
        """The ARCH/CROSS_COMPILE/LLVM variables for every make call of this arch."""
        out = [f"ARCH={self.kernel_arch}"]
        if self.cross_compile:
            out.append(f"CROSS_COMPILE={self.cross_compile}")
        if self.llvm is not None:
            out.append(f"LLVM={self.llvm}")
        return out

    @property
    def compiler(self) -> str:
        if self.llvm is not None:
            return "clang" + (self.llvm if self.llvm.startswith("-") else "")
        return f"{self.cross_compile}gcc"


def _arch_from_row(name: str, row: dict) -> Arch:
    if row.get("boot_route") == "builtin" and not row.get("builtin_dtb"):
        raise OrchestratorError(f"The arch table row '{name}' has boot_route builtin but no builtin_dtb; "
                                "fix orchestrator/data/arches.yaml.", ExitCode.INFRA_ERROR)
    busybox = row.get("busybox") or {}
    if bool(busybox.get("deb_arch")) != bool(busybox.get("suite")):
        raise OrchestratorError(f"The arch table row '{name}' names a busybox deb_arch without its suite (or a "
                                "suite without deb_arch); fix orchestrator/data/arches.yaml.", ExitCode.INFRA_ERROR)
    try:
        q = row["qemu"]
        return Arch(
            name=name,
            kernel_arch=row["kernel_arch"],
            srcarch=row["srcarch"],
            cross_compile=row.get("cross_compile") or "",
            llvm=row.get("llvm"),
            toolchain=dict(row.get("toolchain") or {}),
            build_target=row["build_target"],
            kernel_image=row["kernel_image"],
            qemu=QemuSpec(
                binary=q["binary"], package=q["package"], machine=q["machine"],
                cpu=q["cpu"], memory=str(q.get("memory", "1G")), smp=int(q.get("smp", 2)),
                bios=q.get("bios"), extra_args=tuple(q.get("extra_args") or ()),
                mttcg=bool(q.get("mttcg", False)), tcg_single=bool(q.get("tcg_single", True)),
            ),
            kvm=KvmSpec(cpu=row["kvm"]["cpu"], host_machines=tuple(row["kvm"]["host_machines"])),
            console=row["console"],
            cmdline=row.get("cmdline") or "",
            busybox=BusyboxSpec(**row["busybox"]),
            zig=ZigSpec(**row["zig"]),
            halt_command=row.get("halt_command"),
            packages=tuple(row.get("packages") or ()),
            triple=row["triple"],
            syscall_prefix=row["syscall_prefix"],
            guest_cflags=tuple(row.get("guest_cflags") or ()),
            boot_route=row.get("boot_route", "direct"),
            builtin_dtb=(BuiltinDtbSpec(row["builtin_dtb"]["template"], tuple(row["builtin_dtb"]["low_ram"]),
                                        int(row["builtin_dtb"]["low_window"]), int(row["builtin_dtb"]["high_base"]))
                         if row.get("builtin_dtb") else None),
            ssh=SshSpec(**row["ssh"]) if row.get("ssh") else None,
            build_steps={str(k): int(v) for k, v in (row.get("build_steps") or {}).items()},
            aliases=tuple(str(a) for a in row.get("aliases") or ()),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise OrchestratorError(
            f"The arch table row '{name}' is missing or has a malformed field ({exc}); "
            "fix orchestrator/data/arches.yaml.", ExitCode.INFRA_ERROR) from exc


def _row_on_qemu(row: dict, qemu: str | None) -> dict:
    """The row as it is on the QEMU build named `qemu` (vm/emulators.py): its `on_qemu`
    entry for that name laid over it, the `qemu` mapping field by field."""
    over = (row.get("on_qemu") or {}).get(qemu) if qemu else None
    if not over:
        return row
    merged = {**row, **{k: v for k, v in over.items() if k != "qemu"}}
    if "qemu" in over:
        merged["qemu"] = {**row["qemu"], **over["qemu"]}
    return merged


@functools.cache
def _rows() -> dict[str, dict]:
    text = resources.files("orchestrator").joinpath("data/arches.yaml").read_text()
    return yaml.safe_load(text) or {}


def default_qemu(name: str) -> str | None:
    """The QEMU build the arch's row names as its default (`default_qemu`), if any."""
    return (_rows().get(name) or {}).get("default_qemu")


@functools.cache
def load_table(qemu: str | None = None) -> dict[str, Arch]:
    """The arches as they are on the QEMU build named `qemu` (None: the rows as written,
    which are Debian 12's QEMU 7.2)."""
    return {name: _arch_from_row(name, _row_on_qemu(row, qemu)) for name, row in _rows().items()}


# Host tools every kernel build needs whatever the compiler: kept when it is overridden.
_BUILD_TOOLS = ("make", "flex", "bison", "bc", "pahole", "ccache")


def with_toolchain(arch: Arch, llvm: str | None = None, cross_compile: str | None = None) -> Arch:
    """The arch built with another toolchain than its row says: LLVM=1 / LLVM=-19 (clang
    for every arch), or another CROSS_COMPILE prefix. The host check follows the choice."""
    if llvm is None and cross_compile is None:
        return arch
    new = dataclasses.replace(arch, llvm=llvm if llvm is not None else arch.llvm,
                              cross_compile=arch.cross_compile if cross_compile is None else cross_compile)
    tools = {exe: pkg for exe, pkg in arch.toolchain.items() if exe in _BUILD_TOOLS}
    if new.llvm is not None:
        suffix = new.llvm if new.llvm.startswith("-") else ""
        for exe, pkg in (("clang", "clang"), ("ld.lld", "lld"), ("llvm-ar", "llvm")):
            tools[exe + suffix] = pkg + suffix
    else:
        prefix = new.cross_compile
        tools[f"{prefix}gcc"] = f"gcc-{prefix.rstrip('-')}" if prefix else "gcc"
    return dataclasses.replace(new, toolchain=tools)


def select(names: str, qemu: str | None = None) -> list[Arch]:
    """'arm64', 'x86_64,arm64' or 'all' -> arches, in table order for 'all'."""
    if names.strip() == "all":
        return list(load_table(qemu).values())
    chosen = list({a.name: a for a in (get_arch(n, qemu) for n in names.replace(",", " ").split())}.values())
    if not chosen:
        raise OrchestratorError(f"No arch named in '{names}'; give one or more of "
                                f"{', '.join(sorted(load_table()))} (comma-separated), or 'all'.",
                                ExitCode.BAD_INPUT)
    return chosen


def get_arch(name: str, qemu: str | None = None) -> Arch:
    """The row named `name`, or the one that has it among its aliases (kbuild's x86, riscv...)."""
    table = load_table(qemu)
    if name in table:
        return table[name]
    for arch in table.values():
        if name in arch.aliases:
            return arch
    raise OrchestratorError(
        f"Unknown arch '{name}'; valid arch names are: "
        + ", ".join(f"{n}" + (f" ({', '.join(a.aliases)})" if a.aliases else "") for n, a in sorted(table.items()))
        + ".", ExitCode.BAD_INPUT)
