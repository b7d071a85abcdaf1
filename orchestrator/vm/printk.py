"""Which part of a console line the kernel printed: a line with a printk timestamp
(`[   12.345678] ...`) is the kernel's; a command's line that a kernel message cut off
mid-line goes on after it. The console reads commands' output with this, the splat
detector kernel messages."""
from __future__ import annotations

import re

_KERNEL_LINE = re.compile(r"\[\s*(\d+\.\d+)\]\s?(.*)$")


def command_part(line: str) -> str | None:
    """What of a console line the command printed: the whole line when it carries no
    printk timestamp, the text before a timestamp that interrupted it mid-line (the
    command's line then goes on in the next one), or None for a kernel line."""
    m = _KERNEL_LINE.search(line)
    if not m:
        return line
    before = line[:m.start()]
    return before if before.strip() else None


def kernel_text(line: str) -> tuple[float, str] | None:
    """(timestamp, message) when the line carries a printk timestamp."""
    m = _KERNEL_LINE.search(line)
    if not m:
        return None
    return float(m.group(1)), m.group(2)
