"""Exit codes and the one error type that carries a user-facing sentence."""
from __future__ import annotations

import enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import RunRecord


class ExitCode(enum.IntEnum):
    OK = 0
    TEST_FAILURES = 1      # a case FAILed/ERRORed, or the kernel splatted
    BAD_INPUT = 2          # unknown arch, bad path, malformed fragment, bad option
    MISSING_HOST_TOOL = 3  # toolchain, QEMU, busybox... not installed
    CONFIG_FAILED = 4      # a required kconfig option did not survive
    BUILD_FAILED = 5
    BOOT_FAILED = 6
    INFRA_ERROR = 7        # disk full, cache corruption, an internal bug
    SERIES_DOES_NOT_APPLY = 8  # a patch conflicts, or the series is already in the base
    NO_CASES = 9           # the suites asked for hold no case: nothing was tested
    INTERRUPTED = 130


class OrchestratorError(Exception):
    """An error whose message is one sentence naming the cause and the fix."""

    def __init__(self, message: str, code: ExitCode = ExitCode.BAD_INPUT,
                 results: "RunRecord | None" = None):
        super().__init__(message)
        self.message = message
        self.code = code
        # The record of the run it ended, when one had started: what was
        # measured before the error (the matrix table, a bisect step that did not build).
        self.results = results
