"""``spark-submit``'s entry point: ``spark-submit [options] modules/spark/submit.py <command> …`` runs
``python -m modules <command> …`` as the Spark driver (spark-submit takes a file, not ``-m``).

Give the commands the same master as spark-submit (``--spark spark://HOST:PORT``); ship the package with
``--py-files modules.zip`` or install it on every node (docs/scale.md, "Running on a real cluster").
"""

import os
import sys

if __name__ == "__main__":
    # spark-submit puts this file's folder first on sys.path, where session.py, rules.py … would shadow top-level
    # modules of those names: the package is found through --py-files or its installation instead
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    from modules.cli import main

    sys.exit(main())
