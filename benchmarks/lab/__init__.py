"""Experiments: scripts that try options and variants of the product's internals on validation playlists.

Run each from the repository root as ``python -m benchmarks.lab.<name> …`` (README.md in this folder says what
each one asks). They use the package's public names and the small experiment API of ``modules.hybrid.lab``,
never a private method; their results go to ``benchmarks/results/``. The product's own speed and quality
benchmarks stay one level up, in ``benchmarks/``.
"""
