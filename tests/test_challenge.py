"""Challenge split: official format, ten categories, no leakage, deterministic."""

import orjson
import pytest

from modules.challenge import CATEGORIES, CATEGORY_BY_NAME, split_mpd, split_store, validation_per_category
from modules.errors import SplitError
from modules.mpd import find_slices, read_challenge


def _all(path):
    return {p["pid"]: p for f in find_slices(path) for p in orjson.loads(f.read_bytes())["playlists"]}


def test_split_format_and_no_leakage(world_dir, split_dir):
    full = _all(world_dir)
    train = _all(split_dir / "train")
    challenge = read_challenge(split_dir / "challenge_set.json")
    truth = orjson.loads((split_dir / "truth.json").read_bytes())
    test_pids = {p["pid"] for p in challenge["playlists"]}
    assert len(test_pids) == 50 == len(truth)
    assert not test_pids & set(train)
    assert test_pids | set(train) == set(full)
    assert [f.name for f in find_slices(split_dir / "train")] == [f.name for f in find_slices(world_dir)]
    assert {"date", "version", "playlists"} <= set(challenge)
    per_cat = {}
    for p in challenge["playlists"]:
        t = truth[str(p["pid"])]
        cat = CATEGORY_BY_NAME[t["category"]]
        per_cat[cat.name] = per_cat.get(cat.name, 0) + 1
        orig = full[p["pid"]]["tracks"]
        assert ("name" in p) == cat.title
        assert p["num_samples"] == len(p["tracks"]) == cat.seeds
        assert p["num_holdouts"] == len(t["tracks"]) == len(orig) - cat.seeds
        assert p["num_tracks"] == len(orig) >= cat.min_tracks
        seeds = [s["track_uri"] for s in p["tracks"]]
        held = set(t["tracks"])
        assert not held & set(seeds)
        assert held | set(seeds) == {x["track_uri"] for x in orig}
        assert t["artists"] == [x["artist_name"] for x in orig if x["track_uri"] in held]
        if not cat.random:
            assert seeds == [x["track_uri"] for x in orig[: cat.seeds]]
            assert [s["pos"] for s in p["tracks"]] == list(range(cat.seeds))
        else:
            assert [s["track_uri"] for s in p["tracks"]] == [orig[s["pos"]]["track_uri"] for s in p["tracks"]]
    assert per_cat == {c.name: 5 for c in CATEGORIES}
    assert any(s["pos"] >= 25 for p in challenge["playlists"] if truth[str(p["pid"])]["category"] ==
               "title_random_25" for s in p["tracks"])
    artists = orjson.loads((split_dir / "track_artists.json").read_bytes())
    assert all(artists[x["track_uri"]] == x["artist_name"] for p in full.values() for x in p["tracks"])


def test_split_is_deterministic_and_seed_dependent(world_dir, split_dir, tmp_path):
    split_mpd(world_dir, tmp_path / "again", per_category=5, seed=0)
    for name in ("challenge_set.json", "truth.json"):
        assert (tmp_path / "again" / name).read_bytes() == (split_dir / name).read_bytes()
    split_mpd(world_dir, tmp_path / "other", per_category=5, seed=1)
    assert (tmp_path / "other" / "truth.json").read_bytes() != (split_dir / "truth.json").read_bytes()


def test_split_store_cuts_like_split_mpd(store, split_dir):
    s = split_store(store, per_category=5, seed=0)
    truth = orjson.loads((split_dir / "truth.json").read_bytes())
    assert s.truth == truth
    assert len(s.train_pids) == 400 - 50
    assert not set(s.train_pids) & {int(p) for p in truth}


def test_too_few_playlists_says_what_to_do(world_dir, tmp_path):
    with pytest.raises(SplitError, match="title_first_100 needs 40 playlists with at least 150 tracks.*Lower"):
        split_mpd(world_dir, tmp_path / "x", per_category=40)
    assert not (tmp_path / "x").exists()


def test_validation_grows_with_the_training_playlists_within_bounds():
    sizes = [validation_per_category(n) for n in (0, 350, 3_000, 10_000, 19_000, 30_000, 40_000, 1_000_000)]
    assert sizes == [10, 10, 10, 15, 28, 45, 50, 50]
    assert validation_per_category(19_000) * len(CATEGORIES) == 280  # 1.5 % of 19,000 playlists, rounded


def test_jobs_write_the_same_bytes(world_dir, tmp_path):
    """``--jobs 2`` (slices in worker processes) writes every file as one process does, and a bad slice is
    reported as without workers."""
    from modules.cli import main
    from modules.mpd import read_slice, write_slice

    info, playlists = read_slice(find_slices(world_dir)[0])
    mpd = tmp_path / "mpd"
    mpd.mkdir()
    for a in range(0, len(playlists), 150):  # three slices, so the workers have several
        part = playlists[a:a + 150]
        write_slice(mpd / f"mpd.slice.{a}-{a + len(part) - 1}.json", info, part)
    outs = {}
    for jobs in (1, 2):
        assert main(["challenge", str(mpd), "--out", str(tmp_path / f"j{jobs}"), "--per-category", "3",
                     "--seed", "0", "--jobs", str(jobs)]) == 0
        outs[jobs] = {p.relative_to(tmp_path / f"j{jobs}"): p.read_bytes()
                      for p in sorted((tmp_path / f"j{jobs}").rglob("*")) if p.is_file()}
    assert len(outs[1]) == 3 + 4 and outs[1] == outs[2]  # 3 train slices, challenge, truth, artists, split.json
    for bad, says in ((b'{"playlists": [{"pid": 1}]}', "mpd.slice.150-299.json"),
                      ((mpd / "mpd.slice.0-149.json").read_bytes(), "appears twice")):
        (mpd / "mpd.slice.150-299.json").write_bytes(bad)
        errors = []
        for jobs in (1, 2):
            with pytest.raises(Exception) as err:
                split_mpd(mpd, tmp_path / f"bad{jobs}", per_category=3, jobs=jobs)
            errors.append((type(err.value), str(err.value)))
        assert errors[0] == errors[1] and says in errors[0][1]
    with pytest.raises(SplitError, match="jobs"):
        split_mpd(mpd, tmp_path / "x", per_category=3, jobs=0)
