"""Where the project's own files are, and the defaults every front door (the command
line, the matrix spec, the pytest plugin) shares: each defined here once."""
from __future__ import annotations

import math
import pathlib

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
KCONFIGS_DIR = PROJECT_ROOT / "kconfigs"
IMAGES_DIR = PROJECT_ROOT / "images"
TCSCRIPTS_DIR = PROJECT_ROOT / "tcscripts"
RESULTS_DIR = PROJECT_ROOT / "results"
MATRIX_SPEC = PROJECT_ROOT / "matrix.yaml"

DEFAULT_ARCH = "x86_64"
# Seconds one case may take before it is ERROR, and from QEMU's start to the guest's shell.
CASE_TIMEOUT_SECONDS = 300.0
BOOT_TIMEOUT_SECONDS = 180.0
ACCELS = ("auto", "kvm", "tcg")
TRANSPORTS = ("serial", "ssh")


def seconds_problem(value: object) -> str | None:
    """Why `value` is not a timeout (None when it is one): a finite number above 0. A nan
    or inf timeout never fires, and the waits built on it would poll for ever."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "not a number of seconds"
    if not math.isfinite(value) or value <= 0:
        return "not a finite number of seconds above 0"
    return None


def parse_seconds(text: str) -> float:
    """A timeout from the command line; ValueError with the reason when it is not one."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"'{text}' is not a number of seconds") from None
    problem = seconds_problem(value)
    if problem:
        raise ValueError(f"'{text}' is {problem}")
    return value


def seconds_option(text: str) -> float:
    """parse_seconds as an argparse `type` (the command line's and the pytest plugin's)."""
    import argparse
    try:
        return parse_seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
