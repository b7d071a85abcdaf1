"""The pytest plugin (entry point pytest11): each case of each suite a pytest item
(plugin), each worker's guest and its part of the run's results (parts).
"""
