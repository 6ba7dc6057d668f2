"""Command-line interface: ``python -m modules <command> …``.

Each file in this package registers the commands of one stage (``register(subparsers)``); heavy libraries
(TensorFlow, mlxtend, …) are imported inside the commands, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from modules.errors import UserError

# Files of this package that register commands, in the order --help lists them.
COMMAND_MODULES = ("data", "methods", "two_tower", "rules", "features", "content", "hybrid", "bundle", "serve")



def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m modules",
        description="Open playlist-continuation engine: generate or ingest playlists, train, recommend, "
        "evaluate. Run `python -m modules <command> --help` for a command's options.",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors on stderr")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="debug logging, and the traceback of an error in the input too")
    sub = parser.add_subparsers(dest="command", metavar="<command>", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"modules.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except UserError as err:  # bad input: one line, exit status 2; anything else is a bug and shows its traceback
        if args.verbose:
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
