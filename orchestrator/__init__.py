"""A QEMU-driven real-kernel test orchestrator for Linux tracing patch series."""

__version__ = "0.1.0"

import time as _time

# When the orchestrator was imported: stages record their start against it, so "time
# until the guest starts" includes finding the tree and checking the host.
PROCESS_START = _time.monotonic()
