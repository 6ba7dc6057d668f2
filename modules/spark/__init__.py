"""The data-heavy stages on Apache Spark (``--engine spark``): the same outputs as the local engine, past one machine.

The local engine stays the default and nothing here is imported unless Spark is asked for (the demo needs no JVM).
One file per step:

* ``session.py``: ``spark_session``, a ``SparkSession`` from a master string (``local[*]``, ``spark://host:port``)
  with bounded driver memory and quiet logs, and the checks that say what to install when Java or PySpark is
  missing;
* ``transactions.py``: ``spark_transactions``, a store's playlists (all, or some pids) as distinct ``(pid, track)``
  entries read by the executors: the local ``Transactions``, never on the driver;
* ``rules.py``: ``mine_spark``, pair and triple counts and their rules by Spark SQL, identical to the sparse miner;
* ``tuning.py``: the hybrid's rules under ``train --engine spark``, the evidence filter chosen on validation (or as
  given) with the counts and the mining on Spark, the local engine's choice and rule table;
* ``storage.py``: stores, slices and bundles at URIs (``file://``, ``hdfs://``, ``s3a://``) through Hadoop's file
  systems: listed, fetched for the driver's parts, published (``ingest --out URI``);
* ``ingest.py``: ``ingest_spark``, MPD slices into the same Parquet store as ``modules.store.ingest``, read with
  Spark's JSON reader and validated by the same code;
* ``als.py``: ``SparkALSRecommender``, the ALS baseline (and the hybrid's ALS part format) with its item factors
  fitted by MLlib's implicit ALS (``submit als --engine spark``);
* ``recommend.py``: ``recommend_spark`` / ``recommend_frame``, a challenge or a table of playlists scored on the
  executors with ``mapInPandas``, the bundle loaded once per Python worker, the same answers as
  ``recommend --challenge`` (``recommend --challenge … --engine spark``);
* ``submit.py``: spark-submit's entry point (it runs ``python -m modules``).

docs/scale.md ("Past one machine") has the commands, the spark-submit line for a cluster and what is not done yet.
"""
