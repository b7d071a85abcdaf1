"""Kernel stage: the tree to test (source), its .config from the fragments (kconfig,
kconfig_deps: why an asked option was dropped), the build, and compiler warnings.
"""
