"""Series: reading a patch series and applying it on a worktree (patches), the run of
the series against its base (versus_base) and the bisect to the first bad patch.
"""
