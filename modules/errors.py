"""The errors a user can cause and fix: a malformed file, a bad option, an input that does not exist, an output
folder that is not ours to replace.

Every error of this kind derives from ``UserError``; the command line prints those as one line
(``error: …``, exit status 2) and lets anything else (a bug in this code) show its traceback. Each class also
derives from the built-in exception it refines (``ValueError``, ``FileNotFoundError``, ``FileExistsError``), so
code that catches those keeps working.

A message names where the problem is (file, playlist, field, option), what was received, and what to do.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of every error caused by the user's input, not by this code."""


class InputError(UserError, ValueError):
    """A value given by the user (an option, a parameter, a field of a file) that cannot be used."""


class MissingInputError(UserError, FileNotFoundError):
    """An input file or folder that does not exist."""


class OutputError(UserError, FileExistsError):
    """An output path that writing would destroy or cannot use: refused before any work is done."""


class BundleError(InputError):
    """A bundle that cannot be loaded: missing files, another format, a part that does not match this code."""
