"""A QEMU-driven real-kernel test orchestrator for Linux tracing patch series."""

__version__ = "0.1.0"
