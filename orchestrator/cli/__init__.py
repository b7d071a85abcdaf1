"""The command line: `orchestrator test|matrix|workflow|report|deps` (main), the report
command (report) and the host packages each arch needs (deps).
"""
