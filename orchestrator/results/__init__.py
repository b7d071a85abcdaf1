"""Results stage: results/<run>/ written as results arrive (recorder), and what people
and CI read from it: JUnit, the terminal summary, the HTML report, the comparison of
two runs (compare) and of a run with an earlier one (baseline).
"""
