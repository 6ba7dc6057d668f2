"""The hybrid's error: bad parameters or data for ``HybridRecommender`` (a ``UserError``: the CLI prints it as one
line), in its own module so every file of the package can raise it."""

from __future__ import annotations

from modules.errors import UserError


class HybridError(UserError, ValueError):
    """Bad parameters or data for the hybrid recommender."""
