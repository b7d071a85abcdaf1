"""QEMU command lines from the arch table, and the KVM-or-TCG decision.

KVM is used only when a short probe proves that a guest really runs under it: on
nested-virt hosts (these 2-core Debian VMs among them) /dev/kvm exists, yet `-cpu host`
aborts ("failed to set MSR 0x10a"), named CPU models hang with no console output and
the default one dies with a KVM internal error.
The verdict is cached per host boot so the probe costs its time once.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import platform
import select
import subprocess
import time

from .. import cache, hosttools
from ..arches import Arch
from ..progress import cut_at_word

PROBE_SECONDS = 15.0


@dataclasses.dataclass(frozen=True)
class Accel:
    name: str      # "kvm" or "tcg"
    reason: str


def kernel_cmdline(arch: Arch, extra: str = "") -> str:
    # panic=-1 + -no-reboot: a panicking guest ends QEMU at once instead of hanging.
    # printk.time=1 last, after what the user adds: the splat detector tells the kernel's
    # lines from a command's by their timestamps, so neither a --cmdline printk.time=0
    # nor a fragment turning PRINTK_TIME off may hide a WARN.
    parts = [f"console={arch.console}", "panic=-1", "rdinit=/init", arch.cmdline, extra, "printk.time=1"]
    return " ".join(p for p in parts if p)


def tcg_threads(arch: Arch, guests: int) -> str:
    """How TCG runs a guest's vCPUs: "multi", a host thread each, when the guests running
    at once find a core for every vCPU; else "single", one thread taking the vCPUs in
    turn. Two guests of two vCPUs on two cores ran the default suites in 0.68x of one
    guest's time with four threads, 0.52x with two, the same statuses (x86_64, 2026-12-06):
    the threads waited on each other (text patching's cross-CPU calls) while the host ran
    the other guest's. Each guest keeps its vCPUs, so the cases still patch text with
    another CPU in the guest."""
    q = arch.qemu
    if not q.mttcg or q.smp < 2:
        return ""   # QEMU's own choice: one vCPU, or an arch whose MTTCG is not used
    fits = guests * q.smp <= len(os.sched_getaffinity(0))
    return "multi" if fits or not q.tcg_single else "single"


def qemu_argv(arch: Arch, kernel: pathlib.Path, initrd: pathlib.Path | None, accel: Accel,
              extra_cmdline: str = "", guests: int = 1) -> list[str]:
    """guests: how many guests of this kernel run at once (tcg_threads)."""
    q = arch.qemu
    mode = tcg_threads(arch, guests) if accel.name == "tcg" else ""
    tcg_threads_arg = f",thread={mode}" if mode else ""
    argv = [q.binary, "-machine", q.machine, "-accel", accel.name + tcg_threads_arg,
            "-cpu", arch.kvm.cpu if accel.name == "kvm" else q.cpu,
            "-m", q.memory, "-smp", str(q.smp),
            "-nodefaults", "-no-user-config", "-display", "none",
            "-serial", "stdio", "-no-reboot"]
    if q.bios:
        argv += ["-bios", q.bios]
    argv += ["-kernel", str(kernel)]
    if initrd is not None and arch.boot_route == "direct":
        argv += ["-initrd", str(initrd)]
    if arch.boot_route == "direct":
        # On the builtin route the command line is built into the kernel (CONFIG_CMDLINE_FORCE)
        # and -append would be ignored: the console session then expects no boot nonce on READY.
        argv += ["-append", kernel_cmdline(arch, extra_cmdline)]
    argv += [*q.extra_args]
    return argv


def _boot_id() -> str:
    try:
        return pathlib.Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def accel_prospect(arch: Arch, wanted: str) -> str:
    """The accelerator a run will get, as far as it is known before anything boots:
    "tcg" where KVM cannot be used (asked for TCG, another host machine, no usable
    /dev/kvm), else what was asked for with the device there ("auto+kvm", "kvm+kvm"): the
    probe (choose_accel) settles that case. A run's inputs name this, not the "auto" asked
    for, so a base run under KVM is not reused for a series run under TCG."""
    return "tcg" if _kvm_unusable(arch, wanted) else f"{wanted}+kvm"


def _kvm_unusable(arch: Arch, wanted: str) -> str | None:
    """Why KVM cannot run this arch's guests here without a probe, or None."""
    if wanted == "tcg":
        return "TCG asked for"
    host = platform.machine()
    if host not in arch.kvm.host_machines:
        return f"KVM cannot run {arch.name} guests on a {host} host"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is absent or not accessible"
    return None


def choose_accel(arch: Arch, kernel: pathlib.Path, cache_root: pathlib.Path, wanted: str,
                 say=print) -> Accel:
    """wanted: 'auto', 'kvm' or 'tcg'."""
    if why := _kvm_unusable(arch, wanted):
        return Accel("tcg", why)
    qemu_version = hosttools.version_line((arch.qemu.binary, "--version"))
    key = cache.digest(_boot_id(), arch.name, qemu_version)
    verdicts_path = cache_root / "kvm-probe.json"
    # One probe at a time: two runs would both probe and the second write drop the first's.
    with cache.file_lock(cache_root / "locks" / "kvm-probe.lock", "the KVM probe", on_wait=say):
        verdicts = cache.read_json(verdicts_path) or {}
        verdict = verdicts.get(key)
        if verdict is None:
            ok, detail = _probe(arch, kernel)
            verdict = {"ok": ok, "detail": detail}
            verdicts[key] = verdict
            cache.atomic_write_json(verdicts_path, verdicts)
            if not ok:
                say(f"qemu: KVM does not work here ({detail}); using TCG, which is much slower.")
    if verdict["ok"]:
        return Accel("kvm", "KVM probe booted a kernel")
    if wanted == "kvm":
        say(f"qemu: KVM was asked for but does not work here ({verdict['detail']}); using TCG.")
    return Accel("tcg", f"KVM probe failed: {verdict['detail']}")


def _probe(arch: Arch, kernel: pathlib.Path) -> tuple[bool, str]:
    """Boot the kernel under KVM with no initrd; success is its banner on the console."""
    argv = qemu_argv(arch, kernel, None, Accel("kvm", "probe"))
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    except OSError as exc:
        return False, f"cannot start {argv[0]}: {exc.strerror}"
    seen = b""
    deadline = time.monotonic() + PROBE_SECONDS
    try:
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.5)
            if ready:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                seen += chunk
                if b"Linux version" in seen:
                    return True, "kernel banner seen"
        tail = seen.decode(errors="replace").strip().splitlines()[-1:] or ["no console output"]
        return False, f"{cut_at_word(tail[0], 120)} within {PROBE_SECONDS:.0f}s"
    finally:
        proc.kill()
        proc.wait()
