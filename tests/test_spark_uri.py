"""A store given as a URI (``file:///…``; ``hdfs://…`` and ``s3a://…`` take the same path) is read by Spark's
readers where it is, not forced through ``pathlib`` (which folds ``//``) or opened on the driver."""

from __future__ import annotations

from pathlib import Path

from modules.spark.session import is_uri, path_or_uri
from tests.spark_support import module_spark  # noqa: F401 (the fixture spark)

RULES = ["--min-support", "0.01", "--min-confidence", "0.1", "--max-len", "3"]


def test_uris_stay_text():
    assert is_uri("file:///data/store") and is_uri("hdfs://nn:8020/mpd/store") and is_uri("s3a://bucket/store")
    assert not is_uri("/data/store") and not is_uri("data/store") and not is_uri(Path("/data"))
    assert path_or_uri("hdfs://nn:8020/mpd/store") == "hdfs://nn:8020/mpd/store"
    assert path_or_uri("data/store") == Path("data/store")


def test_rules_from_a_file_uri_equal_the_local_paths(spark, store, tmp_path):
    from modules.cli import main
    from modules.rules import read_rules

    uri = Path(store.path).resolve().as_uri()  # file:///…/store
    assert uri.startswith("file:///")
    assert main(["rules", "--mpd", uri, "--out", str(tmp_path / "uri.parquet"), "--spark", "local[2]", *RULES]) == 0
    assert main(["rules", "--mpd", str(store.path), "--out", str(tmp_path / "local.parquet"), *RULES]) == 0
    got, want = read_rules(tmp_path / "uri.parquet").to_frame(), read_rules(tmp_path / "local.parquet").to_frame()
    assert len(want) > 1000 and got.equals(want)


def test_a_uri_needs_spark_and_a_store(spark, tmp_path, capsys):
    from modules.cli import main

    assert main(["rules", "--mpd", "file:///nowhere/store", "--out", str(tmp_path / "r.parquet")]) == 2
    assert "is a URI, which only Spark reads: add --engine spark" in capsys.readouterr().err
    missing = (tmp_path / "none").resolve().as_uri()
    assert main(["rules", "--mpd", missing, "--out", str(tmp_path / "r.parquet"), "--spark", "local[2]"]) == 2
    assert f"{missing} is not a playlist store Spark can read" in capsys.readouterr().err
    assert not (tmp_path / "r.parquet").exists()
