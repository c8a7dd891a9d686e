"""End-to-end benchmark of okrsync against plain-SQL / pandas baselines measured in the same run.

Run it with ``.venv/bin/python -m bench`` (``--quick`` for a 50,000-row smoke run, ``--help`` for the
rest). Targets are ratios against those baselines, never absolute timings: there are no timing asserts
in the tests. Results go to the terminal and to ``bench/out/latest.json``; BENCHMARKS.md records one run.
"""
