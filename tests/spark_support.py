"""The Spark test session: one per test module, small (``local[2]``, two shuffle partitions, 1 GB), skipped with the
reason only where no Java runtime can be had (``make test`` installs Debian's ``default-jre-headless``)."""

from __future__ import annotations

import pytest


def spark_or_skip():
    """A small local session (the caller stops it), or a skip saying what is missing."""
    from modules.spark.session import java_problem, pyspark_problem, spark_session

    for problem in (java_problem(), pyspark_problem()):
        if problem:
            pytest.skip(f"Spark tests skipped: {problem}")
    # adaptive execution plans each shuffle again at run time: on this tiny data that is 5x the jobs for nothing
    return spark_session("local[2]", shuffle_partitions=2, driver_memory="1g", app_name="playlist-engine-tests",
                         conf={"spark.sql.adaptive.enabled": "false"})


@pytest.fixture(scope="module", name="spark")
def module_spark():
    """The fixture ``spark``: a test module's session (``spark_or_skip``), stopped after its tests; import
    ``module_spark`` into the module to use it."""
    session = spark_or_skip()
    yield session
    session.stop()
