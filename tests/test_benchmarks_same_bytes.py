"""The behaviour-unchanged check hashes behaviour, not the clock: durations and export fingerprints are dropped."""

import json

import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks import same_bytes


def _write(tmp_path, name, seconds, rows):
    table = pa.table({"x": rows}).replace_schema_metadata(
        {"rules": json.dumps({"rules": len(rows), "seconds": seconds, "fit_seconds": seconds})})
    pq.write_table(table, tmp_path / name)
    return tmp_path / name


def test_parquet_hash_ignores_durations_but_not_rows_or_counts(tmp_path):
    a = _write(tmp_path, "a.parquet", 1.5, [1, 2, 3])
    b = _write(tmp_path, "b.parquet", 9.25, [1, 2, 3])
    c = _write(tmp_path, "c.parquet", 1.5, [1, 2, 4])
    d = _write(tmp_path, "d.parquet", 1.5, [1, 2, 3, 4])
    assert a.read_bytes() != b.read_bytes()
    assert same_bytes._sha(a) == same_bytes._sha(b)
    assert same_bytes._sha(a) != same_bytes._sha(c)
    assert same_bytes._sha(a) != same_bytes._sha(d)


def test_json_hash_ignores_durations_and_rates_only(tmp_path):
    base = {"epochs": [{"loss": 1.0, "seconds": 3.0, "examples_per_s": 10.0}], "train_seconds": 2.0}
    slower = {"epochs": [{"loss": 1.0, "seconds": 7.0, "examples_per_s": 4.0}], "train_seconds": 9.0}
    other_loss = {"epochs": [{"loss": 1.5, "seconds": 3.0, "examples_per_s": 10.0}], "train_seconds": 2.0}
    paths = []
    for i, doc in enumerate((base, slower, other_loss)):
        paths.append(tmp_path / f"{i}.json")
        paths[-1].write_text(json.dumps(doc))
    assert same_bytes._sha(paths[0]) == same_bytes._sha(paths[1])
    assert same_bytes._sha(paths[0]) != same_bytes._sha(paths[2])


def test_check_without_reference_or_work_folder_says_what_to_do(tmp_path, capsys):
    import pytest

    with pytest.raises(SystemExit):
        same_bytes.main(["--check", "--hash-only"])
    assert "--hash-only needs --work" in capsys.readouterr().err
