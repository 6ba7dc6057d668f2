"""The errors of rule mining and scoring: both are user errors (the CLI prints them as one ``error:`` line).

They live apart so that every other file of ``modules.rules`` can raise them without importing one another.
"""

from __future__ import annotations

from modules.errors import UserError


class RulesError(UserError, ValueError):
    """Bad parameters or data for rule mining (shown by the CLI as one ``error:`` line)."""


class MemoryBudgetError(RulesError):
    """The mlxtend engine would need more memory than the budget allows; nothing was run."""
