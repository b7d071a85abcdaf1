"""The guest's SSH server for the SSH transport: dropbear, built static per arch from
Debian's source package with zig's musl (one binary for every arch; musl reads
/etc/passwd itself, where a static glibc would need NSS modules the guest has not).

One multi-call binary holds the server, its key generator and scp (the logs come back
over scp: dropbear has no SFTP server of its own). Cached by recipe; nothing committed.
"""
from __future__ import annotations

import os
import pathlib

from . import busybox
from ..arches import Arch
from ..errors import ExitCode, OrchestratorError

# What the guest's server allows: public-key logins of root only, no forwarding of any
# kind. Written as dropbear's localoptions.h.
LOCAL_OPTIONS = """\
#define DROPBEAR_SVR_PASSWORD_AUTH 0
#define DROPBEAR_SVR_PAM_AUTH 0
#define DROPBEAR_X11FWD 0
#define DROPBEAR_SVR_AGENTFWD 0
#define DROPBEAR_SVR_LOCALTCPFWD 0
#define DROPBEAR_SVR_REMOTETCPFWD 0
"""
PROGRAMS = "dropbear dropbearkey scp"
# No login records in an initramfs without /var/log; no zlib in the guest.
CONFIGURE_FLAGS = ("--enable-static", "--disable-zlib", "--disable-lastlog", "--disable-utmp",
                   "--disable-utmpx", "--disable-wtmp", "--disable-wtmpx", "--disable-pututline",
                   "--disable-pututxline", "--disable-harden")
GUEST_PATH = "/kto/bin/dropbearmulti"


def require_ssh(arch: Arch) -> None:
    """Bad input before any work: the SSH transport on an arch without a network card."""
    if arch.ssh is None:
        raise OrchestratorError(
            f"The arch table gives {arch.name} no SSH transport (its `ssh` row says why); use "
            "--transport serial (the default) on this arch.", ExitCode.BAD_INPUT)


def dropbear_for(arch: Arch, cache_root: pathlib.Path, say=print) -> pathlib.Path:
    """The static dropbearmulti for `arch` (built once, about 3 minutes)."""
    require_ssh(arch)
    return busybox.built_from_source(arch, cache_root, "dropbearmulti", (pathlib.Path(__file__), pathlib.Path(busybox.__file__)),
                                     lambda dest: _build(arch, cache_root, dest, say))


def _build(arch: Arch, cache_root: pathlib.Path, dest: pathlib.Path, say) -> None:
    busybox.build_autotools(
        arch, cache_root, "dropbear", dest, CONFIGURE_FLAGS,
        [["make", f"-j{os.cpu_count() or 1}", f"PROGRAMS={PROGRAMS}", "MULTI=1", "STATIC=1"]],
        "dropbearmulti", "about 3 minutes", say,
        prepare=lambda build: (build / "localoptions.h").write_text(LOCAL_OPTIONS))
