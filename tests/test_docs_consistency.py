"""The docs and the interfaces they describe agree: every make variable and every flag of
every command is in docs/usage.md, every flag has help text, `make help` names every verb
and variable, and a yes/no make variable that is neither is refused, not ignored."""
import argparse
import pathlib
import re
import subprocess

import pytest

from orchestrator.cli.main import build_parser

REPO = pathlib.Path(__file__).resolve().parent.parent
USAGE = (REPO / "docs" / "usage.md").read_text()
MAKEFILE = (REPO / "Makefile").read_text()


def _make_list(name: str) -> list[str]:
    m = re.search(rf"^{re.escape(name)}\s*:=?\s*((?:.*\\\n)*.*)$", MAKEFILE, re.M)
    return m.group(1).replace("\\\n", " ").split()


def _flags() -> list[tuple[str, argparse.Action]]:
    out = []
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, sub in [("", parser), *subs.choices.items()]:
        for action in sub._actions:
            for opt in action.option_strings:
                if opt.startswith("--") and opt != "--help":
                    out.append((f"{command} {opt}".strip(), action))
    return out


@pytest.mark.parametrize("variable", _make_list("USER_VARIABLES"))
def test_every_make_variable_is_in_the_usage_page(variable):
    assert f"`{variable}" in USAGE, f"docs/usage.md does not name {variable}"


@pytest.mark.parametrize("command_flag", [f for f, _ in _flags()])
def test_every_flag_is_in_the_usage_page_with_help(command_flag):
    action = dict(_flags())[command_flag]
    flag = command_flag.split()[-1]
    assert action.help and action.help != argparse.SUPPRESS, f"{command_flag} has no help text"
    assert f"`{flag}" in USAGE, f"docs/usage.md does not name {command_flag}"


def test_make_help_names_every_verb_and_variable():
    text = subprocess.run(["make", "--no-print-directory", "help"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout
    verbs = [v for v in _make_list(".PHONY") if v != "help"]
    assert not [v for v in verbs if not re.search(rf"\bmake {re.escape(v)}\b", text)], text
    assert not [v for v in _make_list("USER_VARIABLES") if v not in text], text


@pytest.mark.parametrize("assignment", ["COMPARE=maybe", "BISECT=2", "EACH_PATCH=all", "UNTIL_FAIL=sometimes"])
def test_a_yes_no_variable_that_is_neither_is_refused(assignment):
    p = subprocess.run(["make", "--no-print-directory", "-n", "test", assignment], cwd=REPO, capture_output=True,
                       text=True)
    name = assignment.split("=")[0]
    assert p.returncode == 2 and f"{assignment} " in p.stderr and "give" in p.stderr, p.stderr
    assert p.stdout == "" or name not in p.stdout


@pytest.mark.parametrize("assignment", ["COMPARE=1", "COMPARE=no", "EACH_PATCH=test", "BISECT=", "UNTIL_FAIL=on"])
def test_a_yes_no_variable_given_right_is_taken(assignment):
    p = subprocess.run(["make", "--no-print-directory", "-n", "test", assignment], cwd=REPO, capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("page", sorted(p.name for p in (REPO / "docs").glob("*.md")))
def test_every_docs_page_is_linked_from_the_readme_and_back(page):
    assert f"](docs/{page})" in (REPO / "README.md").read_text(), f"README.md does not link docs/{page}"
    assert "](../README.md)" in (REPO / "docs" / page).read_text(), f"docs/{page} does not link back"


def test_the_readme_is_a_front_page():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 250, len(lines)
    assert not [n for n, l in enumerate(lines, 1) if len(l) > 100], "README.md lines over 100 columns"
