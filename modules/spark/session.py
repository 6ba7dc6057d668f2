"""``spark_session``: a ``SparkSession`` from a master string, with bounded memory and quiet logs.

``local[*]`` (the default) runs Spark inside this process's JVM on every core; ``local[2]`` on two;
``spark://HOST:PORT`` on a standalone cluster. A session already running in this process is reused when its master
is the one asked for (a second ``getOrCreate`` with another master would silently keep the first one, so that is
refused). Java and PySpark are checked first, with a message that says what to install.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from modules.errors import SparkError

log = logging.getLogger(__name__)

DEFAULT_MASTER = "local[*]"
MASTER = re.compile(r"(local(\[(\*|\d+)(,\d+)?\])?|spark://[^\s/]+:\d+(,[^\s/]+:\d+)*|yarn|k8s://\S+)\Z")
# Spark's own settings for a small, quiet, deterministic session; the caller's ``conf`` wins
DEFAULT_CONF = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


# Spark's log4j2 settings: its start-up lines below ERROR stay quiet (written once per process, see _log_config)
_LOG4J2 = """rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""


def _log_config() -> Path:
    path = Path(tempfile.gettempdir()) / f"playlist-engine-log4j2-{os.getuid()}.properties"
    if not path.exists() or path.read_text() != _LOG4J2:
        path.write_text(_LOG4J2)
    return path


def _loopback(master: str) -> bool:
    return master.startswith("local") or master.startswith(("spark://127.", "spark://localhost:"))


def local_cores(master: str) -> int | None:
    """The cores of a ``local`` master (``local``: 1, ``local[N]``: N, ``local[*]``: this machine's), else None."""
    m = re.match(r"local(\[(\*|\d+)(,\d+)?\])?\Z", master)
    if not m:
        return None
    if m.group(1) and m.group(2) == "*":
        return os.cpu_count() or 1
    return int(m.group(2) or 1)


def java_problem() -> str | None:
    """Why Spark cannot start a JVM here (None when ``java`` is found)."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(os.path.join(home, "bin", "java"), os.X_OK):
        return None
    if shutil.which("java"):
        return None
    return ("Spark needs a Java runtime (17 or later) and `java` is not on PATH; install one with "
            "`apt-get install default-jre-headless` (or `make java`), or set JAVA_HOME.")


def pyspark_problem() -> str | None:
    """Why PySpark cannot be imported (None when it can)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "PySpark is not installed; install the pinned one with `pip install -r requirements.txt`."
    return None


def check_master(master: str) -> str:
    """``master`` when it names a Spark master, else ``SparkError`` saying which forms are accepted."""
    if not isinstance(master, str) or not MASTER.match(master):
        raise SparkError(f"--spark {master!r} is not a Spark master; give local[*] (every core of this machine), "
                         "local[N], or spark://HOST:PORT for a standalone cluster.")
    return master


def engine_and_master(engine: str | None, master: str | None, *, default: str) -> tuple[str, str | None]:
    """A command's engine and Spark master from ``--engine`` and ``--spark`` (``--spark`` alone means the spark
    engine; ``--engine spark`` alone runs on ``local[*]``); no JVM is started here."""
    if master is not None:
        if engine not in (None, "spark"):
            raise SparkError(f"--spark {master} runs the spark engine, not --engine {engine}; drop one of the two.")
        return "spark", check_master(master)
    engine = engine or default
    return engine, DEFAULT_MASTER if engine == "spark" else None


def spark_session(master: str = DEFAULT_MASTER, *, app_name: str = "playlist-engine", driver_memory: str = "2g",
                  shuffle_partitions: int | None = None, conf: dict | None = None, log_level: str = "ERROR"):
    """A ``SparkSession`` on ``master`` (reused when one on the same master is running in this process).

    Parameters
    ----------
    master : str, default="local[*]"
        ``local[*]``, ``local[N]`` or ``spark://HOST:PORT``.
    driver_memory : str, default="2g"
        The driver JVM's heap (in local mode the executors live in it too): bounded, so Spark spills to disk
        instead of taking the machine.
    shuffle_partitions : int, default=None
        ``spark.sql.shuffle.partitions``. None: twice the cores of a ``local`` master, Spark's own default (200)
        on a cluster. 200 on ``local[2]`` costs each shuffle 200 tasks: the rules of 1,200 MPD-shaped playlists
        took 126 s of JVM CPU with 200 and 19 s with 4 (docs/scale.md, "Past one machine").
    conf : dict, default=None
        More Spark settings (``{"spark.executor.memory": "4g"}``); they override the defaults here.
    log_level : str, default="ERROR"
        Spark's log level once the JVM is up (its start-up lines are quieted by the same setting).
    """
    check_master(master)
    for problem in (java_problem(), pyspark_problem()):
        if problem:
            raise SparkError(problem)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        running = active.sparkContext.master
        if running != master:
            raise SparkError(f"a Spark session on {running} is already running in this process; stop it "
                             f"(spark.stop()) before asking for one on {master}.")
        return active
    # PySpark 4.3 warns on every Arrow path that pandas >= 3 (pinned: 3.1.1) is "not yet fully supported"; the
    # engines here move Arrow tables (toArrow, mapInArrow, createDataFrame of Arrow), and mapInPandas was tried on
    # pandas 3.1.1 and works (docs/scale.md, "Past one machine"), so the warning says nothing about this code
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    # the Python workers run this interpreter (its packages, this checkout's modules), unless the user chose one
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    settings = dict(DEFAULT_CONF)
    settings["spark.driver.memory"] = driver_memory
    settings["spark.driver.extraJavaOptions"] = f"-Dlog4j2.configurationFile=file:{_log_config()}"
    if _loopback(master):  # a local session listens on this machine only
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        settings["spark.driver.host"] = "127.0.0.1"
        settings["spark.driver.bindAddress"] = "127.0.0.1"
    if shuffle_partitions is None and local_cores(master):
        shuffle_partitions = 2 * local_cores(master)
    if shuffle_partitions is not None:
        settings["spark.sql.shuffle.partitions"] = str(int(shuffle_partitions))
    settings.update({k: str(v) for k, v in (conf or {}).items()})
    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(log_level)
    log.info("Spark %s session on %s (driver memory %s)", spark.version, master, driver_memory)
    return spark


URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(path) -> bool:
    """Whether ``path`` is a URI for Spark's readers (``file:///…``, ``hdfs://…``, ``s3a://…``), kept as text:
    ``pathlib`` would fold its ``//``."""
    return isinstance(path, str) and URI.match(path) is not None


def path_or_uri(text: str):
    """A command-line path: a URI stays text (for Spark), anything else becomes a ``Path``."""
    return text if is_uri(text) else Path(text)


def running_session():
    """The Spark session running in this process (e.g. the one ``train --engine spark`` started), or None; imports
    PySpark only when it is installed."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return None
    return SparkSession.getActiveSession()


def session_or_master(spark):
    """What a stage given ``spark`` runs on: a session as it is; None: the running session, else ``local[*]``
    (a master string, for ``session_for``); a master string as it is."""
    if spark is None:
        return running_session() or DEFAULT_MASTER
    return spark


def active_session(spark):
    """The session a stage given ``spark`` runs on (``session_or_master``), a master string started as a session
    (``spark_session``; it keeps running, as the one ``train --engine spark`` starts)."""
    on = session_or_master(spark)
    return spark_session(on) if isinstance(on, str) else on


@contextmanager
def session_for(master: str = DEFAULT_MASTER, **kwargs) -> Iterator:
    """``spark_session(master, **kwargs)`` for one command: stopped at the end when it was started here (a session
    that was already running, e.g. a notebook's or a test's, is left running)."""
    check_master(master)
    running = running_session()
    spark = spark_session(master, **kwargs)
    try:
        yield spark
    finally:
        if running is None:
            spark.stop()
