"""A store given as a URI (``file:///…``; ``hdfs://…`` and ``s3a://…`` take the same path) is read by Spark's
readers where it is, not forced through ``pathlib`` (which folds ``//``) or opened on the driver."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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


def test_ingest_from_and_to_file_uris_writes_the_local_store(spark, tmp_path):
    """Slices read at a URI, the store written to a URI: the local ingest's store (fingerprint included), and an
    existing store there replaced only by a complete one."""
    from modules.cli import main
    from modules.store import ingest
    from tests.test_spark_ingest import assert_same_store, hand_made, write

    write(tmp_path / "mpd", hand_made())
    ingest(tmp_path / "mpd", tmp_path / "local", show_progress=False)
    out = (tmp_path / "remote").as_uri()
    for _ in range(2):  # the second run replaces the store the first one wrote
        assert main(["ingest", (tmp_path / "mpd").as_uri(), "--out", out, "--spark", "local[2]"]) == 0
        assert_same_store(tmp_path / "local", tmp_path / "remote")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local", "mpd", "remote"]  # no staging copy left


def test_a_bad_slice_at_a_uri_is_named_by_its_uri(spark, tmp_path):
    from modules.errors import MPDFormatError
    from modules.spark.ingest import ingest_spark
    from modules.store import ingest
    from tests.test_spark_ingest import broken, write

    write(tmp_path / "mpd", broken("duplicate"))  # found on the driver, from copies of the slices
    with pytest.raises(MPDFormatError) as local:
        ingest(tmp_path / "mpd", tmp_path / "local", show_progress=False)
    with pytest.raises(MPDFormatError) as remote:
        ingest_spark((tmp_path / "mpd").as_uri(), (tmp_path / "out").as_uri(), spark=spark)
    second = tmp_path / "mpd" / "mpd.slice.1000-1999.json"
    assert str(remote.value) == str(local.value).replace(str(second), second.as_uri())
    assert not (tmp_path / "out").exists()


def test_als_from_a_store_uri_reads_the_uri(spark, train_store, monkeypatch):
    """MLlib reads the entries at the URI (not the driver's copy), and fits what it fits from the path."""
    import modules.spark.als as spark_als
    from modules.spark.als import SparkALSRecommender

    read = []
    real = spark_als.item_factors_spark

    def spy(session, store, *args, **kwargs):
        from modules.spark.transactions import store_base

        read.append(store_base(store))
        return real(session, store, *args, **kwargs)

    monkeypatch.setattr(spark_als, "item_factors_spark", spy)
    params = {"factors": 8, "iterations": 3, "seed": 0}
    uri = Path(train_store.path).resolve().as_uri()
    from_uri = SparkALSRecommender(spark=spark, **params).fit(uri)
    from_path = SparkALSRecommender(spark=spark, **params).fit(train_store)
    assert read == [uri, str(train_store.path)]
    a, b = from_uri.model_.item_factors, from_path.model_.item_factors
    assert a.shape == b.shape and a.shape[0] > 100 and np.abs(a - b).max() < 1e-2


def test_recommend_with_a_bundle_uri_writes_the_local_file(spark, tiny_bundle, split_dir, tmp_path):
    from modules.cli import main

    challenge = str(split_dir / "challenge_set.json")
    assert main(["recommend", "--model", str(tiny_bundle), "--challenge", challenge,
                 "--out", str(tmp_path / "local.csv")]) == 0
    assert main(["recommend", "--model", Path(tiny_bundle).resolve().as_uri(), "--challenge", challenge,
                 "--out", str(tmp_path / "uri.csv"), "--spark", "local[2]"]) == 0
    assert (tmp_path / "uri.csv").read_bytes() == (tmp_path / "local.csv").read_bytes()


@pytest.mark.parametrize("args, flag", [
    (["ingest", "file:///mpd", "--out", "{tmp}/s"], "MPD_DIR file:///mpd"),
    (["ingest", "{tmp}", "--out", "file:///s"], "--out file:///s"),
    (["train", "--mpd", "file:///store", "--out", "{tmp}/b"], "--mpd file:///store"),
    (["submit", "als", "--train", "file:///store", "--challenge", "{tmp}/c.json", "--out", "{tmp}/x.csv"],
     "--train file:///store"),
    (["recommend", "--model", "file:///bundle", "--challenge", "{tmp}/c.json", "--out", "{tmp}/x.csv"],
     "--model file:///bundle"),
])
def test_every_uri_needs_the_spark_engine(tmp_path, capsys, args, flag):
    from modules.cli import main

    assert main([a.format(tmp=tmp_path) for a in args]) == 2
    assert f"{flag} is a URI, which only Spark reads: add --engine spark" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_uri_destination_meets_the_local_folders_rule(spark, tmp_path):
    """``--out URI`` is refused or accepted as a local ``--out`` is, with the same message (``atomic.refusal``)."""
    from modules.atomic import check_output_folder
    from modules.errors import InputError, OutputError
    from modules.spark.storage import check_destination
    from modules.store import MANIFEST, STORE_KIND

    kind = (MANIFEST, STORE_KIND.name)
    (tmp_path / "file").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / MANIFEST).write_text('{"format": "playlist-store/1"}')
    for name in ("file", "other"):
        with pytest.raises(OutputError) as local:
            check_output_folder(tmp_path / name, STORE_KIND)
        uri = (tmp_path / name).as_uri()
        with pytest.raises(InputError) as remote:
            check_destination(spark, uri, kind)
        assert str(remote.value) == str(local.value).replace(str(tmp_path / name), uri)
    for name in ("new", "empty", "store"):
        check_destination(spark, (tmp_path / name).as_uri(), kind)
        check_output_folder(tmp_path / name, STORE_KIND)
