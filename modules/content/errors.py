"""The content model's user error, apart so that every file of ``modules.content`` can raise it."""

from __future__ import annotations

from modules.errors import UserError


class ContentError(UserError, ValueError):
    """Input the content model cannot use."""
