"""Frames of a real splat (7.2.12 x86_64, TCG's int3 Oops in
tcscripts/fprobe_under_function_graph.tc, captured with what addr2line printed for its
vmlinux) decoded to file:line relative to the tree."""
import json
import pathlib

from orchestrator.arches import get_arch
from orchestrator.kernel import symbolize
from orchestrator.model import Frame, Inlined

CASE = "x86_64-7.2.12-int3-splat.json"
VIEW = pathlib.Path("/root/.cache/orchestrator/views/source")


def test_frames_are_read_in_order_without_the_unwinder_s_guesses(data_dir):
    case = json.loads((data_dir / CASE).read_text())
    frames = symbolize.frames_of(case["lines"])
    assert [f.frame for f in frames[:3]] == ["tick_periodic+0x1/0x70", "tick_handle_periodic+0x27/0x60",
                                             "__sysvec_apic_timer_interrupt+0x53/0x110"]
    assert frames[0].exact and not frames[1].exact      # RIP: the faulting pc; then return addresses
    assert (frames[0].func, frames[0].offset, frames[0].size) == ("tick_periodic", 1, 0x70)
    assert len(frames) == symbolize.MAX_FRAMES
    assert not any("? " + f.frame in case["lines"] for f in frames)
    assert symbolize.frames_of([" ? argv_split+0x8d/0x110", " vfs_write+0xbd/0x3a0",
                                " bpf_prog_run+0x10/0x20 [bpf_testmod]"])[1].module == "bpf_testmod"


def test_addr2line_output_becomes_tree_relative_places_with_their_inlined_chain(data_dir, monkeypatch):
    case = json.loads((data_dir / CASE).read_text())
    sym = symbolize.Symbolizer(pathlib.Path("/nonexistent/vmlinux"), get_arch("x86_64"), [pathlib.Path("/src"), VIEW])
    addresses = iter(case["addresses"])
    monkeypatch.setattr(sym, "_address", lambda f: next(addresses))
    monkeypatch.setattr(sym, "_run", lambda argv: case["addr2line"])
    decoded = sym.decode(symbolize.frames_of(case["lines"]))
    assert decoded[0] == Frame(frame="tick_periodic+0x1/0x70", function="tick_periodic",
                               file="kernel/time/tick-common.c", line=87)
    apic = decoded[2]
    assert (apic.function, apic.file, apic.line) == ("local_apic_timer_interrupt",
                                                     "arch/x86/kernel/apic/apic.c", 1051)
    assert apic.inlined_by == [Inlined(function="__sysvec_apic_timer_interrupt",
                                       file="arch/x86/kernel/apic/apic.c", line=1068)]
    assert all(not d.file.startswith("/") for d in decoded if d.file)


def test_the_tools_follow_the_arch_s_toolchain():
    assert symbolize.tools_for(get_arch("x86_64")) == ("nm", "addr2line")
    assert symbolize.tools_for(get_arch("arm64")) == ("aarch64-linux-gnu-nm", "aarch64-linux-gnu-addr2line")
    assert symbolize.tools_for(get_arch("loongarch64")) == ("llvm-nm-19", "llvm-addr2line-19")
