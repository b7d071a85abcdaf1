"""Config stage input and verdict: parse kconfig fragments, merge them, and compare the
final .config with every option that was asked for.

Kconfig silently drops an option whose dependencies are unmet; a tracing test then
shows up as UNSUPPORTED instead of failing. So every asked option is checked, and each
one that did not survive is explained from the tree's own Kconfig files.
"""
from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Sequence

from ..errors import ExitCode, OrchestratorError
from ..model import Dropped
from . import kconfig_deps

_SET = re.compile(r"^(CONFIG_[A-Za-z0-9_]+)=(\S+)$")
# CONFIG_X=value, the value a "quoted string" (which may hold #) or a bare word,
# then an optional comment; "required" in the comment marks the option required.
_FRAGMENT_LINE = re.compile(r'^(CONFIG_[A-Za-z0-9_]+)=("(?:[^"\\]|\\.)*"|[^\s#"]+)\s*(?:#(.*))?$')
_UNSET = re.compile(r"^# (CONFIG_[A-Za-z0-9_]+) is not set$")


@dataclasses.dataclass(frozen=True)
class Option:
    name: str            # CONFIG_FOO
    value: str           # y, m, n, a number or a "string"
    required: bool
    source: str          # fragment:line, for the report


def parse_fragment(path: pathlib.Path) -> list[Option]:
    """Parse one fragment; a line that is not an option, a comment or blank is bad input."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise OrchestratorError(f"Cannot read kconfig fragment {path}: {exc.strerror}; "
                                "check the path given to --kconfig / KCONFIG=.") from exc
    except UnicodeDecodeError as exc:
        raise OrchestratorError(f"The kconfig fragment {path} is not UTF-8 text (byte {exc.start}); "
                                "give a fragment of CONFIG_NAME=value lines.") from exc
    options = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        where = f"{path.name}:{number}"
        unset = _UNSET.match(line)
        if unset:
            options.append(Option(unset.group(1), "n", False, where))
            continue
        if not line or line.startswith("#"):
            continue
        m = _FRAGMENT_LINE.match(line)
        if not m:
            raise OrchestratorError(
                f"{path}:{number}: '{line}' is not a kconfig line; write it as "
                "CONFIG_NAME=value (or '# CONFIG_NAME is not set'), with an optional "
                "'# required' comment.")
        options.append(Option(m.group(1), m.group(2), "required" in (m.group(3) or "").lower(), where))
    return options


def merge(fragments: list[pathlib.Path]) -> dict[str, Option]:
    """Later fragments override earlier ones, as merge_config.sh does."""
    merged: dict[str, Option] = {}
    for frag in fragments:
        for opt in parse_fragment(frag):
            prev = merged.get(opt.name)
            # "required" sticks: an arch fragment restating an option does not weaken it.
            required = opt.required or (prev.required if prev and prev.value == opt.value else False)
            merged[opt.name] = dataclasses.replace(opt, required=required)
    return merged


def render_allconfig(merged: dict[str, Option]) -> str:
    """The KCONFIG_ALLCONFIG file: comments stripped (kconfig would read them as values)."""
    out = []
    for opt in merged.values():
        out.append(f"# {opt.name} is not set" if opt.value == "n" else f"{opt.name}={opt.value}")
    return "\n".join(out) + "\n"


def read_dotconfig(path: pathlib.Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text(errors="replace").splitlines():
        m = _SET.match(line.strip()) or re.match(r"^(CONFIG_[A-Za-z0-9_]+)=(.*)$", line)
        if m:
            values[m.group(1)] = m.group(2)
    return values


def compare(merged: dict[str, Option], dotconfig: dict[str, str], srctree: pathlib.Path,
            kernel_arch_dir: str) -> list[Dropped]:
    """Every asked option whose final value differs, with the reason from the tree's Kconfig."""
    index = None
    dropped = []
    for opt in merged.values():
        got = dotconfig.get(opt.name, "n")
        if got == opt.value:
            continue
        if index is None:
            index = kconfig_deps.KconfigIndex(srctree, kernel_arch_dir)
        kind, reason = index.explain(opt.name[len("CONFIG_"):], dotconfig)
        dropped.append(Dropped(opt.name, opt.value, got, opt.required, opt.source, kind, reason))
    return dropped


class ConfigFailed(OrchestratorError):
    def __init__(self, message: str, dropped: list[Dropped]):
        super().__init__(message, ExitCode.CONFIG_FAILED)
        self.dropped = dropped


def check_required(dropped: list[Dropped]) -> None:
    missing = [d for d in dropped if d.required]
    if missing:
        detail = "; ".join(f"{d.option} ({d.reason})" for d in missing)
        raise ConfigFailed(
            f"Required kconfig options did not survive the config step: {detail}; "
            "enable what they depend on in kconfigs/ or drop '# required' if the tree "
            "really cannot have them.", dropped)


def check_user_fragments(extra: Sequence[pathlib.Path], srctree: pathlib.Path, srcarch: str) -> None:
    """An option a user's fragment names that this tree's Kconfig does not define is a typo
    or the wrong tree: bad input before any build. (The project's own fragments may name
    options older trees lack; those are reported as "not defined" instead.)"""
    if not extra:
        return
    index = kconfig_deps.KconfigIndex(srctree, srcarch)
    for path in extra:
        for opt in parse_fragment(path):
            if opt.name.removeprefix("CONFIG_") not in index.entries:
                raise OrchestratorError(
                    f"{opt.source}: {opt.name} is not an option of this tree's Kconfig (arch "
                    f"{srcarch}); fix its name or drop it from {path}.")
