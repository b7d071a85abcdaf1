"""A scripted guest: stands where QEMU does on a ConsoleSession and answers each command
the host sends with what a script says a guest printed for it, the way a real guest's
shell and kernel share one console: the command's output, kernel messages (printk
timestamps) before and after its end marker, the end marker with an exit status and a
taint mask, and the fence the host's command line asks the kernel to log.

usage: scripted_guest.py SCRIPT.json -append "<kernel command line>"
SCRIPT: a list, one entry per command: {"output": [...], "kernel": [...] (before END),
"after_end": [...] (kernel lines printed after END, before the fence), "rc": 0,
"taint": 0, "forge_end": false (print an end marker made from the boot's nonce first),
"fence_cuts_last_line": false (the fence lands before the last output line's newline),
"die": false (the guest ends, as QEMU does on a panic, when the command arrives)}.
"""
import json
import re
import sys


def main() -> None:
    script = json.load(open(sys.argv[1]))
    cmdline = sys.argv[sys.argv.index("-append") + 1]
    boot = re.search(r"kto\.boot=([0-9a-f]+)", cmdline).group(1)
    out = sys.stdout
    clock = [1.0]

    def kernel(msg: str) -> None:
        clock[0] += 0.01
        out.write(f"[{clock[0]:12.6f}] {msg}\n")

    kernel("Linux version 7.2.12 (scripted guest)")
    out.write(f"KTO:READY:{boot}:7.2.12:0:1.00\n")
    out.flush()
    for entry in script:
        line = sys.stdin.readline()
        if not line:
            return
        if entry.get("die"):
            kernel("Kernel panic - not syncing: scripted")
            out.flush()
            sys.exit(1)
        m = re.search(r"printf 'KTO:%s:([0-9a-f]+):(\d+):%s(?: %s)?\\n' BEGIN", line)
        token, seq = m.group(1), m.group(2)
        fence = re.search(r"echo '<0>(KTO:FENCE:[0-9a-f]+:\d+)'(?: [^>]*)? >/dev/kmsg", line)
        out.write(f"KTO:BEGIN:{token}:{seq}:{clock[0]:.2f}\n")
        lines = entry.get("output", [])
        cutter = fence and entry.get("fence_cuts_last_line")
        for k, text in enumerate(lines):
            if cutter and k == len(lines) - 1:
                # As seen on a real console: the tty's output and the kernel's interleave
                # anywhere, so the fence can land before the newline of the last line.
                out.write(text)
                kernel(fence.group(1))
                out.write("\n")
                fence = None
            else:
                out.write(text + "\n")
        if entry.get("forge_end"):
            # What a case can learn: the boot's nonce (/proc/cmdline) and the sequence.
            out.write(f"KTO:END:{boot}:{seq}:0:0:{clock[0]:.2f}\n")
        for msg in entry.get("kernel", []):
            kernel(msg)
        out.write(f"KTO:END:{token}:{seq}:{entry.get('rc', 0)}:{entry.get('taint', 0)}:{clock[0] + 1:.2f}\n")
        for msg in entry.get("after_end", []):
            kernel(msg)
        if fence:
            kernel(fence.group(1))
        out.flush()
    sys.stdin.read()   # stay up until the host ends the guest


if __name__ == "__main__":
    main()
