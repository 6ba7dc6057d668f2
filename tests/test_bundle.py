"""``Bundle``: the one place that knows a bundle's layout and reads and writes its manifest.

The layout is what these tests pin down, so they spell its file names on purpose; other tests ask ``Bundle``.
"""

import logging
import shutil

import orjson
import pandas as pd
import pytest

from modules.bundle import BUNDLE_FORMAT, PART_ENTRIES, PICKLE_FORMAT, Bundle, package_versions, read_manifest
from modules.errors import BundleError


def fake_bundle(path, parts=("two_tower", "rules", "content", "als", "fusion"), **manifest):
    """A folder with the files a manifest lists (empty stand-ins: enough for the layout and the checks)."""
    b = Bundle(path)
    path.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"track_uri": ["spotify:track:a", "spotify:track:b", "spotify:track:c"],
                  "track_name": ["A", "B", "C"]}).to_parquet(b.tracks_file, index=False)
    for name in parts:
        target = b.part(name)
        if Bundle.part_entry(name).endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.write_bytes(b"")
    b.write_manifest({"format": BUNDLE_FORMAT, "versions": package_versions(),
                      "parts": {n: Bundle.part_entry(n) for n in parts}, **manifest})
    return b


def test_every_part_has_one_path(tmp_path):
    b = Bundle(tmp_path / "bundle")
    assert b.manifest_file == tmp_path / "bundle" / "manifest.json"
    assert b.tracks_file == tmp_path / "bundle" / "tracks.parquet"
    assert b.two_tower_dir == tmp_path / "bundle" / "two_tower"
    assert b.saved_model == tmp_path / "bundle" / "two_tower" / "saved_model"
    assert b.training_curve == tmp_path / "bundle" / "two_tower" / "training_curve.json"
    assert b.checkpoints == tmp_path / "bundle" / "two_tower" / "checkpoints"
    assert b.rules_file == tmp_path / "bundle" / "rules.parquet"
    assert (b.content_dir, b.als_dir, b.fusion_dir) == tuple(tmp_path / "bundle" / n for n in ("content", "als",
                                                                                                "fusion"))
    assert b.pickle_file("fusion").name == "fusion.joblib" and b.pickle_file("als").name == "als.joblib"
    assert {n: b.part(n) for n in PART_ENTRIES} == {n: tmp_path / "bundle" / e.rstrip("/")
                                                     for n, e in PART_ENTRIES.items()}
    with pytest.raises(ValueError, match="unknown bundle part 'ruls'; the parts are two_tower, rules"):
        b.part("ruls")
    assert str(tmp_path / "bundle") == b.__fspath__() and "bundle" in repr(b)


def test_manifest_round_trip_and_checks(tmp_path, caplog):
    b = fake_bundle(tmp_path / "b", data={"playlists": 3})
    assert b.check()["data"] == {"playlists": 3} and read_manifest(b.path) == b.read_manifest()
    assert b.count_tracks() == 3 and b.first_track_uris(2) == ["spotify:track:a", "spotify:track:b"]
    assert b.manifest_file.read_bytes().startswith(b'{\n  "format"')  # indented JSON, as train_bundle wrote it

    shutil.rmtree(b.content_dir)
    b.rules_file.unlink()
    with pytest.raises(BundleError, match=r"incomplete: missing rules\.parquet, content/\. Retrain"):
        b.check()
    assert b.missing_files(b.read_manifest()) == ["rules.parquet", "content/"]

    stale = fake_bundle(tmp_path / "stale", versions={**package_versions(), "numpy": "0.0.1"})
    with caplog.at_level(logging.WARNING, logger="modules.bundle"):
        stale.check()
    assert "numpy 0.0.1 -> " in caplog.text and "retrain it" in caplog.text


@pytest.mark.parametrize("fmt,message", [
    (PICKLE_FORMAT, "bundle convert .* --trust-pickles"),
    ("playlist-bundle/9", "has bundle format 'playlist-bundle/9'; this version reads 'playlist-bundle/2'"),
])
def test_other_formats_are_refused_with_what_to_do(tmp_path, fmt, message):
    b = fake_bundle(tmp_path / "b")
    b.write_manifest({**b.read_manifest(), "format": fmt})
    with pytest.raises(BundleError, match=message):
        b.check()


def test_a_folder_without_manifest_is_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="is not a model bundle: no manifest.json \\(the folder does not exist\\)"):
        Bundle(tmp_path / "nowhere").read_manifest()
    with pytest.raises(BundleError, match="no manifest.json. Train one with: python -m modules train"):
        read_manifest(tmp_path)


def test_a_trained_bundle_is_laid_out_as_bundle_says(tiny_bundle):
    """What train_bundle wrote, where ``Bundle`` looks for it: the manifest's part entries are ``PART_ENTRIES``,
    so the writer (``HybridRecommender.save``) and the readers agree."""
    from modules.recommender import Recommender

    b = Bundle(tiny_bundle)
    manifest = b.check()
    assert manifest["format"] == BUNDLE_FORMAT
    assert manifest["parts"] == {n: Bundle.part_entry(n) for n in manifest["parts"]}
    assert all(b.part(n).exists() for n in manifest["parts"])
    assert (b.saved_model / "saved_model.pb").is_file() and b.training_curve.is_file()
    assert not b.checkpoints.exists()  # train_bundle keeps none
    assert orjson.loads(b.training_curve.read_bytes())["epochs"]
    tracks = pd.read_parquet(b.tracks_file)
    assert b.count_tracks() == len(tracks) and b.first_track_uris(3) == tracks["track_uri"].head(3).tolist()
    rec = Recommender.load(tiny_bundle)
    assert rec.bundle.path == b.path and rec.manifest == manifest
