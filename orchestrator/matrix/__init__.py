"""The matrix: arches x kernels from matrix.yaml (spec), run one cell after another
(run), and the nightly CI workflow generated from the same spec (workflow).
"""
