"""Side-by-side benchmarks: each figure is measured against a baseline in the same run.

Run them all with ``python -m benchmarks.run`` from the project root (``--quick`` for a
smoke run). Each benchmark is a sibling module with an async ``run(options)`` that
returns a :class:`benchmarks.report.Table`; ``harness`` holds the shared plumbing.
"""
