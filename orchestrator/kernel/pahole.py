"""What the host's pahole costs a tree's BTF: a tree's scripts/Makefile.btf asks pahole
for newer encoder features by version (`test-ge, $(pahole-ver), 126`); with an older
pahole the kernel builds, but its BTF lacks them. Said once per run in the config report,
so an odd BTF-typed argument is not taken for a kernel bug."""
from __future__ import annotations

import pathlib
import re

from .. import hosttools

# What each version adds to the kernel's BTF, in 6.x/7.x scripts/Makefile.btf terms.
_WHAT = {
    125: "optimized functions whose prototype the compiler changed (.isra/.constprop clones) are "
         "not left out (--skip_encoding_btf_inconsistent_proto --btf_gen_optimized), so a BTF-typed "
         "probe argument on such a function may name the wrong register",
    126: "the --btf_features set (decl_tag_kfuncs, consistent_func, optimized_func...): kfuncs carry "
         "no BTF decl tags",
}


def host_version() -> int | None:
    """pahole --version as kbuild counts it (v1.24 -> 124)."""
    m = re.search(r"v?(\d+)\.(\d+)", hosttools.version_line(("pahole", "--version")))
    return int(m.group(1)) * 100 + int(m.group(2)) if m else None


def notes(tree_path: pathlib.Path, have: int | None = None) -> list[str]:
    """One line per BTF feature the tree asks a newer pahole for than the host has."""
    have = host_version() if have is None else have
    try:
        text = (tree_path / "scripts" / "Makefile.btf").read_text(errors="replace")
    except OSError:
        return []
    wanted = sorted({int(v) for v in re.findall(r"test-ge, \$\(pahole-ver\), (\d+)", text)})
    if have is None or not wanted:
        return []
    return [f"pahole {have // 100}.{have % 100} < {v // 100}.{v % 100}: {_WHAT[v]}"
            for v in wanted if v > have and v in _WHAT]
