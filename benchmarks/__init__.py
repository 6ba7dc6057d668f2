"""Speed and quality benchmarks: run each from the repository root as ``python -m benchmarks.<name> …``.

A package (not installed with ``modules``) so that one benchmark can reuse another's helpers
(``from benchmarks.quality import prepare``) and the tests can import them, with no ``sys.path`` edits.
Results go to ``benchmarks/results/``; docs/benchmarks.md quotes them with the command behind each number.
"""
