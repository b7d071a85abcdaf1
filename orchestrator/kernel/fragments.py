"""Which kconfig fragments a run merges: the project's (base, tracing, the arch's, from
kconfigs/) and then the user's (KCONFIG=, a path or a name in kconfigs/), applied last.
The two kinds are checked differently (kconfig.check_user_fragments), so they are kept
apart here rather than told apart by position."""
from __future__ import annotations

import dataclasses
import pathlib
import re

from .. import cache
from ..arches import Arch
from ..errors import OrchestratorError
from ..project import KCONFIGS_DIR
from .kconfig import parse_fragment


@dataclasses.dataclass(frozen=True)
class Fragments:
    project: tuple[pathlib.Path, ...]
    user: tuple[pathlib.Path, ...]

    @property
    def flavor(self) -> str:
        """The user's fragments as a name for their own build dir ("debug" for KCONFIG=debug,
        "" for none): a debug kernel and the default one each stay built, instead of one
        rebuilding the other from scratch at every switch."""
        names = "+".join(p.stem for p in self.user)
        if not names or re.fullmatch(r"[A-Za-z0-9_+-]{1,40}", names):
            return names
        return "kconfig-" + cache.digest(*map(str, self.user))[:8]

    @property
    def all(self) -> list[pathlib.Path]:
        """In merge order: the user's last, so they win."""
        return [*self.project, *self.user]


def _user_path(name: str) -> pathlib.Path:
    path = pathlib.Path(name).expanduser()
    for candidate in (KCONFIGS_DIR / name, KCONFIGS_DIR / f"{name}.config"):
        if not path.exists() and candidate.exists():
            path = candidate
    return path


def fragments_for(arch: Arch, extra: list[str]) -> Fragments:
    """Every fragment exists and parses, or OrchestratorError (bad input, before any work)."""
    found = Fragments(
        project=(KCONFIGS_DIR / "base.config", KCONFIGS_DIR / "tracing.config",
                 KCONFIGS_DIR / f"{arch.name}.config"),
        user=tuple(_user_path(e) for e in extra))
    for p in found.all:
        if not p.is_file():
            names = ", ".join(sorted(x.stem for x in KCONFIGS_DIR.glob("*.config")))
            raise OrchestratorError(f"The kconfig fragment {p} does not exist; give a path or a "
                                    f"name from kconfigs/ ({names}).")
        parse_fragment(p)  # malformed lines are bad input before any work starts
    return found
