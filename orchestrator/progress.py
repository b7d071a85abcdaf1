"""One live status line on a terminal; plain, rate-limited lines when output is a log."""
from __future__ import annotations

import shutil
import sys
import time
from typing import TextIO


def cut_at_word(text: str, width: int) -> str:
    """One line of at most `width` columns, cut at a word where it is longer (a word
    longer than half the line is cut where the line ends), "..." saying so."""
    line = " ".join((text or "").split())
    if len(line) <= width:
        return line
    cut = line[:width - 3]
    return (cut.rsplit(" ", 1)[0] if " " in cut[width // 2:] else cut) + "..."


def printable(text: str) -> str:
    """Text for a terminal, a text file or a mail, whatever the guest or a series put in
    it: control characters (ESC, BEL, a bare CR: window titles, screen clears, OSC 52
    clipboard writes) and lone surrogates written as escapes; line breaks kept."""
    return "\n".join("".join(ch if ch.isprintable() or ch == "\t" else ch.encode("unicode_escape").decode("ascii")
                             for ch in line) for line in text.split("\n"))


def fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    # A log (CI, nohup) gets the status at least this often: enough to plan by, not a flood.
    def __init__(self, stream: TextIO | None = None, plain_interval: float = 10.0):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.plain_interval = plain_interval
        self._last_plain = 0.0
        self._shown = False

    def status(self, text: str) -> None:
        """Replace the status line (terminal) or print it now and then (log)."""
        if self.tty:
            width = max(20, shutil.get_terminal_size((100, 20)).columns - 1)
            self.stream.write("\r" + printable(text)[:width] + "\x1b[K")
            self.stream.flush()
            self._shown = True
        else:
            now = time.monotonic()
            if now - self._last_plain >= self.plain_interval:
                self._last_plain = now
                self.stream.write(printable(text) + "\n")
                self.stream.flush()

    def log(self, text: str) -> None:
        """A line for a log only (on a terminal the status line already showed it)."""
        if not self.tty:
            self.say(text)

    def clear(self) -> None:
        if self.tty and self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False

    def say(self, text: str) -> None:
        """A line that stays."""
        self.clear()
        self.stream.write(printable(text) + "\n")
        self.stream.flush()
        self._last_plain = 0.0
