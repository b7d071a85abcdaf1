"""Suites stage: which cases exist, running them one by one in a guest (runner), and
reading what they printed: KTAP (ktap), ftracetest logs (caselog), kernel splats.
"""
