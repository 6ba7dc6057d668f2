"""Option parsing shared by several commands."""

from __future__ import annotations

import inspect
import json

from modules.errors import InputError


def json_object(text: str, flag: str = "--params") -> dict:
    """A JSON object given on the command line, or an ``InputError`` that says what is wrong with it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{flag} is not valid JSON ({err}): {text!r}") from None
    if not isinstance(value, dict):
        raise InputError(f"{flag} must be a JSON object, got {text!r}")
    return value


def at_least(value: int, low: int, flag: str) -> int:
    """``value`` when it is at least ``low``, else an ``InputError`` naming ``flag``."""
    if value < low:
        raise InputError(f"{flag} must be at least {low} (got {value}).")
    return value


def construct(cls, params: dict, flag: str = "--params"):
    """``cls(**params)`` after checking the names: an unknown one is an ``InputError`` naming ``flag`` and listing
    the known ones (the constructors only store their parameters; their values are checked by ``fit``)."""
    sig = inspect.signature(cls)
    if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        unknown = sorted(set(params) - set(sig.parameters))
        if unknown:
            raise InputError(f"{flag}: unknown parameters {unknown} for {cls.__name__}; known: "
                             f"{', '.join(sorted(sig.parameters))}.")
    return cls(**params)


# the help of an argument that takes a store's URI with the spark engine (``modules.spark.storage``)
STORE_URI_NOTE = ", or with --engine spark a store's URI (file:///…, hdfs://…, s3a://…) that Spark reads there"


def engine_options(p, engine_help: str, master_note: str = "") -> None:
    """``--engine local|spark`` (``engine_help`` says what each does) and ``--spark MASTER``, which
    ``modules.spark.session.engine_and_master`` reads (``--spark`` alone means the spark engine)."""
    p.add_argument("--engine", choices=("local", "spark"), help=engine_help)
    p.add_argument("--spark", metavar="MASTER",
                   help="the spark engine's master (implies --engine spark): local[*] (default: every core here), "
                   f"local[N], or spark://HOST:PORT{master_note}")
