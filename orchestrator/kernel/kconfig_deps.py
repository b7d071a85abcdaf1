"""Why did kconfig drop an option? A small reader of the tree's Kconfig files.

It records, per symbol, the `depends on` lines of its entries plus the conditions of
the `if`/`menu`/`choice` blocks around it (within one file) and of its prompt, and
evaluates them against the final .config the way menuconfig's help does:
"depends on DEBUG_KERNEL [=n] && KALLSYMS [=y]". Conditions inherited through a
parent file's `source` line are not followed; the result is a best effort that names
the direct cause in the cases that matter (HAVE_* arch capabilities, DEBUG_KERNEL...).
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import re

_TOKEN = re.compile(r'\s*(&&|\|\||!=|<=|>=|[!()=<>]|"[^"]*"|\'[^\']*\'|[A-Za-z0-9_.\-]+)')


@dataclasses.dataclass
class Entry:
    symbol: str
    where: str
    conditions: list[str]        # every expression that must be non-n
    has_prompt: bool = False


class _Expr:
    """Recursive-descent evaluator of Kconfig expressions over tristate values 0/1/2."""

    def __init__(self, text: str, values: dict[str, str]):
        self.tokens = [t for t in _TOKEN.findall(text) if t]
        self.pos = 0
        self.values = values

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _next(self) -> str:
        tok = self._peek()
        self.pos += 1
        return tok or ""

    def value(self) -> int:
        try:
            return self._or()
        except (IndexError, ValueError):
            return 2  # unparsable: do not blame it

    def _or(self) -> int:
        v = self._and()
        while self._peek() == "||":
            self._next()
            v = max(v, self._and())
        return v

    def _and(self) -> int:
        v = self._not()
        while self._peek() == "&&":
            self._next()
            v = min(v, self._not())
        return v

    def _not(self) -> int:
        if self._peek() == "!":
            self._next()
            return 2 - self._not()
        return self._cmp()

    def _cmp(self) -> int:
        if self._peek() == "(":
            self._next()
            v = self._or()
            self._next()  # ")"
            return v
        left = self._next()
        if self._peek() in ("=", "!=", "<", ">", "<=", ">="):
            op = self._next()
            right = self._next()
            a, b = self._str(left), self._str(right)
            result = {"=": a == b, "!=": a != b}.get(op)
            if result is None:
                try:
                    x, y = int(a, 0), int(b, 0)
                except ValueError:
                    x, y = a, b  # type: ignore[assignment]
                result = {"<": x < y, ">": x > y, "<=": x <= y, ">=": x >= y}[op]
            return 2 if result else 0
        return self._tristate(left)

    def _str(self, tok: str) -> str:
        if tok[:1] in "\"'":
            return tok[1:-1]
        if tok in ("y", "m", "n") or re.fullmatch(r"-?(0x[0-9a-fA-F]+|[0-9]+)", tok):
            return tok
        return self.values.get("CONFIG_" + tok, "n").strip('"')

    def _tristate(self, tok: str) -> int:
        return {"y": 2, "m": 1}.get(self._str(tok), 0)


def symbols_in(expr: str) -> list[str]:
    return [t for t in _TOKEN.findall(expr)
            if re.fullmatch(r"[A-Z0-9_]+", t) and not t.isdigit() and t not in ("y", "m", "n")]


def evaluate(expr: str, values: dict[str, str]) -> int:
    return _Expr(expr, values).value()


def annotate(expr: str, values: dict[str, str]) -> str:
    """DEBUG_KERNEL && KALLSYMS -> DEBUG_KERNEL [=n] && KALLSYMS [=y]"""
    def repl(m: re.Match) -> str:
        sym = m.group(0)
        if sym in ("y", "m", "n") or sym.isdigit():
            return sym
        return f"{sym} [={values.get('CONFIG_' + sym, 'n')}]"
    return re.sub(r"\b[A-Z][A-Z0-9_]*\b", repl, expr.strip())


class KconfigIndex:
    def __init__(self, srctree: pathlib.Path, srcarch: str):
        self.entries: dict[str, list[Entry]] = {}
        self.selected_by: dict[str, set[str]] = {}
        for path in self._kconfig_files(srctree, srcarch):
            self._parse(path, srctree)

    @staticmethod
    def _kconfig_files(srctree: pathlib.Path, srcarch: str):
        skip_top = {"Documentation", "tools", ".git", "debian"}
        for root, dirs, files in os.walk(srctree):
            rel = os.path.relpath(root, srctree)
            if rel == ".":
                dirs[:] = [d for d in dirs if d not in skip_top]
            elif rel == "arch":
                dirs[:] = [d for d in dirs if d == srcarch]
            for name in files:
                if name.startswith("Kconfig"):
                    yield pathlib.Path(root, name)

    def _parse(self, path: pathlib.Path, srctree: pathlib.Path) -> None:
        blocks: list[list[str]] = []     # conditions of enclosing if/menu/choice
        header_open = False               # a menu/choice header still takes `depends on`
        entry: Entry | None = None
        help_indent: int | None = None
        in_help = False
        rel = os.path.relpath(path, srctree)
        try:
            lines = path.read_text(errors="replace").splitlines()
        except OSError:
            return
        for number, raw in enumerate(lines, 1):
            if in_help:
                if not raw.strip():
                    continue
                indent = len(raw) - len(raw.lstrip())
                if help_indent is None:
                    help_indent = indent
                if indent >= help_indent and indent > 0:
                    continue
                in_help = False
            line = raw.split("#", 1)[0].strip() if '"' not in raw else raw.strip()
            if not line:
                continue
            word, _, rest = line.partition(" ")
            rest = rest.strip()
            if word in ("config", "menuconfig"):
                entry = Entry(rest, f"{rel}:{number}", [c for b in blocks for c in b])
                self.entries.setdefault(rest, []).append(entry)
                header_open = False
            elif word in ("if",):
                blocks.append([rest])
                entry, header_open = None, False
            elif word in ("menu", "choice"):
                blocks.append([])
                entry, header_open = None, True
            elif word in ("endif", "endmenu", "endchoice"):
                if blocks:
                    blocks.pop()
                entry, header_open = None, False
            elif word in ("help", "---help---"):
                in_help, help_indent = True, None
            elif line.startswith("depends on"):
                cond = line[len("depends on"):].strip()
                if entry is not None:
                    entry.conditions.append(cond)
                elif header_open and blocks:
                    blocks[-1].append(cond)
            elif word in ("select", "imply") and entry:
                target = rest.split()[0] if rest else ""
                self.selected_by.setdefault(target, set()).add(entry.symbol)
            elif word in ("bool", "tristate", "string", "int", "hex", "prompt") and entry:
                if rest.startswith('"'):
                    entry.has_prompt = True
                    m = re.search(r'"\s+if\s+(.+)$', rest)
                    if m:
                        entry.conditions.append(m.group(1))
            elif word in ("source", "comment", "mainmenu"):
                entry = None  # what follows no longer belongs to the last config entry

    def has_prompt(self, symbol: str) -> bool:
        return any(e.has_prompt for e in self.entries.get(symbol, []))

    def user_settable(self, symbol: str) -> bool:
        """A fragment can turn it on: it has a prompt, or an option with a prompt selects it."""
        return self.has_prompt(symbol) or any(
            self.has_prompt(s) for s in self.selected_by.get(symbol, ()))

    def explain(self, symbol: str, values: dict[str, str]) -> tuple[str, str]:
        """(kind, reason). kind is 'undefined', 'unavailable' (only arch/tree capabilities
        are missing: nothing a fragment can fix) or 'dropped' (a fragment could fix it)."""
        entries = self.entries.get(symbol)
        if not entries:
            return "undefined", "not defined by any Kconfig file of this tree for this arch"
        best_unmet: list[str] | None = None
        for e in entries:
            unmet = [c for c in e.conditions if evaluate(c, values) == 0]
            if best_unmet is None or len(unmet) < len(best_unmet):
                best_unmet = unmet
        assert best_unmet is not None
        if not best_unmet:
            return "dropped", ("its dependencies are met, yet kconfig did not keep the value "
                               "(a choice, a select, or a symbol without a prompt)")
        reason = "depends on " + "; ".join(annotate(c, values) for c in best_unmet)
        leaves = self._unmet_leaves(best_unmet, values, depth=0)
        kind = "unavailable" if leaves and not any(self.user_settable(s) for s in leaves) else "dropped"
        return kind, reason

    def _unmet_leaves(self, conds: list[str], values: dict[str, str], depth: int) -> set[str]:
        """The symbols at the bottom of the unmet conditions. A symbol that is off although
        its own conditions hold is a leaf; one whose conditions fail is followed down, so
        FPROBE_EVENTS -> FPROBE -> HAVE_RETHOOK ends at the arch capability. The caller
        asks whether any leaf is something a fragment could turn on."""
        leaves: set[str] = set()
        for cond in conds:
            for sym in symbols_in(cond):
                if evaluate(sym, values) != 0:
                    continue
                sub = [c for e in self.entries.get(sym, []) for c in e.conditions
                       if evaluate(c, values) == 0]
                if sub and depth < 6:
                    leaves |= self._unmet_leaves(sub, values, depth + 1)
                else:
                    leaves.add(sym)
        return leaves
