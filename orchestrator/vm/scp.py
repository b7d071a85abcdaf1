"""The receiving side of the scp protocol, for copying a case's log dir back from the
guest over SSH. The guest runs the kernel under test and is untrusted: names must not
climb out of the target, and nothing it sends is buffered without a bound."""
from __future__ import annotations

import pathlib
import re
import time

import paramiko


# What one case's log dir may hold: far more than ftracetest writes, bounded all the same
# (the host buffers each file whole).
MAX_BYTES = 64 << 20
# A record line is a mode, a size and one name (NAME_MAX is 255 bytes); the entries and
# the depth bound what empty files and directories may make on the host.
MAX_LINE = 1024
MAX_ENTRIES = 10000
MAX_DEPTH = 32
_SAFE_NAME = re.compile(r"^[^/\0]+$")


class ScpSink:
    """The receiving side of the scp protocol (what `scp -t` does), enough for -r."""

    def __init__(self, chan: paramiko.Channel, seconds: float = 120.0):
        self.chan = chan
        self.received = 0   # bytes of file data so far
        self.entries = 0    # files and directories made so far
        self.seconds = seconds
        # The whole copy's: a guest that sends a byte now and then must not hold the run.
        self.deadline = time.monotonic() + seconds

    def _recv(self, n: int) -> bytes:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise OSError(f"scp: the copy took longer than {self.seconds:.0f}s; it stops here")
        self.chan.settimeout(left)
        return self.chan.recv(n)

    def _line(self) -> bytes:
        out = b""
        while not out.endswith(b"\n"):
            if len(out) >= MAX_LINE:
                raise OSError(f"scp: a record from the guest longer than {MAX_LINE} bytes: {out[:60]!r}")
            c = self._recv(1)
            if not c:
                return out
            out += c
        return out

    def _read_exact(self, n: int) -> bytes:
        chunks: list[bytes] = []
        while n > 0:
            c = self._recv(min(n, 65536))
            if not c:
                raise OSError("scp: the source ended in the middle of a file")
            chunks.append(c)
            n -= len(c)
        return b"".join(chunks)

    def receive_into(self, local: pathlib.Path) -> list[pathlib.Path]:
        stack: list[pathlib.Path] = []
        files: list[pathlib.Path] = []
        self.chan.sendall(b"\0")
        while True:
            line = self._line()
            if not line:
                return files
            kind, body = line[:1], line[1:].rstrip(b"\n").decode("utf-8", errors="replace")
            if kind in (b"\x01", b"\x02"):
                raise OSError(f"scp in the guest: {body}")
            if kind == b"T":          # times (-p): not asked for, accepted
                self.chan.sendall(b"\0")
                continue
            if kind == b"E":
                if not stack:
                    raise OSError("scp: the guest ended a directory it never began")
                stack.pop()
                self.chan.sendall(b"\0")
                continue
            try:
                mode, size_text, name = body.split(" ", 2)
                size, perm = int(size_text), int(mode, 8)
            except ValueError:
                raise OSError(f"scp: a garbled record from the guest: {line[:60]!r}") from None
            self.received += size if kind == b"C" else 0
            if size < 0 or self.received > MAX_BYTES:
                raise OSError(f"scp: the guest sent more than {MAX_BYTES >> 20} MiB of logs; the copy stops here")
            # The guest runs the kernel under test: its names must not climb out.
            if not _SAFE_NAME.match(name) or name in (".", ".."):
                raise OSError(f"scp: refusing the name {name!r} from the guest")
            self.entries += 1
            if self.entries > MAX_ENTRIES or (kind == b"D" and len(stack) >= MAX_DEPTH):
                raise OSError(f"scp: the guest sent more than {MAX_ENTRIES} entries or {MAX_DEPTH} levels "
                              "of directories; the copy stops here")
            if kind == b"D":
                target = local if not stack else stack[-1] / name
                target.mkdir(parents=True, exist_ok=True)
                stack.append(target)
                self.chan.sendall(b"\0")
            elif kind == b"C":
                self.chan.sendall(b"\0")
                data = self._read_exact(size)
                self._read_exact(1)   # the source's status byte after the data
                target = (stack[-1] if stack else local) / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                target.chmod(perm & 0o644 | 0o600)
                files.append(target)
                self.chan.sendall(b"\0")
            else:
                raise OSError(f"scp: unexpected record {line[:40]!r}")
