"""``spark-submit``'s entry point: ``spark-submit [options] modules/spark/submit.py <command> …`` runs
``python -m modules <command> …`` as the Spark driver (spark-submit takes a file, not ``-m``).

Give the commands the same master as spark-submit (``--spark spark://HOST:PORT``); ship the package with
``--py-files modules.zip`` or install it on every node (docs/scale.md, "Running on a real cluster"). Python puts this
file's folder first on ``sys.path``; its files (``session``, ``rules``, ``ingest``, ``als``, ``recommend``) are
names no dependency imports at the top level, and ``modules`` itself comes from the zip or the installation.
"""

import sys

from modules.cli import main

if __name__ == "__main__":
    sys.exit(main())
