"""The training notebooks and their builder: ``python -m notebooks.build_notebooks`` (docs/notebooks.md).

A package only so the builder can be run and imported (by tests/test_notebooks.py) from the repository root.
"""
