"""``python -m modules …``: the command-line interface (see ``modules.cli``)."""

import sys

from modules.cli import main

if __name__ == "__main__":
    sys.exit(main())
