"""Option parsing shared by several commands."""

from __future__ import annotations

import json


def json_object(text: str, flag: str = "--params") -> dict:
    """A JSON object given on the command line, or a ValueError that says what is wrong with it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{flag} is not valid JSON ({err}): {text!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object, got {text!r}")
    return value
