"""The one error type of the app helpers."""

from modules.errors import UserError


class ExploreError(UserError, ValueError):
    """Input the app helpers cannot use (a file that is not what it should be, a bad argument)."""
