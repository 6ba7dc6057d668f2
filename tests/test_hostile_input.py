"""Hostile input and fresh machines (issue #18, items 3-5): every command refuses an --out that is not its own,
reads slices through one validation path, and fails early on a bad file with the file, playlist and field
named and nothing lost. A user's mistake is one line (``error: …``, exit status 2); a bug shows its traceback.

Each case runs the command line end to end (``modules.cli.main``) on small files in ``tmp_path``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import shutil

import orjson
import pytest

import modules
from modules.cli import main
from modules.errors import UserError


def _uri(i):
    return "spotify:track:" + f"{i:022d}"


def _pl(pid, n=3, **extra):
    tracks = [{"pos": i, "artist_name": "a", "track_uri": _uri(pid * 1000 + i),
               "artist_uri": "spotify:artist:" + "B" * 22, "track_name": f"t{i}",
               "album_uri": "spotify:album:" + "C" * 22, "duration_ms": 1000, "album_name": "alb"} for i in range(n)]
    return {"name": f"pl {pid}", "collaborative": "false", "pid": pid, "modified_at": 0, "num_tracks": n,
            "num_albums": 1, "num_followers": 1, "num_edits": 1, "duration_ms": 1000 * n, "num_artists": 1,
            "tracks": tracks, **extra}


def _write_slices(folder, *slices):
    """``slices``: lists of playlists, written as mpd.slice.0-999.json, mpd.slice.1000-1999.json, …"""
    folder.mkdir(parents=True, exist_ok=True)
    for k, playlists in enumerate(slices):
        (folder / f"mpd.slice.{1000 * k}-{1000 * k + 999}.json").write_bytes(
            orjson.dumps({"info": {"slice": f"{1000 * k}-{1000 * k + 999}"}, "playlists": playlists}))
    return folder


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def run(capsys, *argv):
    """Exit status and stderr of ``python -m modules -q ARGV`` (in this process)."""
    capsys.readouterr()
    code = main(["-q", *map(str, argv)])
    return code, capsys.readouterr().err


def assert_user_error(code, err, *parts):
    """Exit status 2 and one line ``error: …`` holding ``parts`` (after any progress bar), no traceback."""
    assert code == 2, err
    line = err.rstrip().split("\n")[-1]
    assert line.startswith("error: ") and "Traceback" not in err, err
    for part in parts:
        assert part in line, f"{part!r} not in {line!r}"


# --- item 3: a command writes only into a folder of its own ---------------------------------------------------

def test_challenge_out_equal_to_its_input_is_refused_and_the_slices_kept(world_dir, tmp_path, capsys):
    mpd = tmp_path / "mpd"
    shutil.copytree(world_dir, mpd)
    before = _snapshot(mpd)
    assert_user_error(*run(capsys, "challenge", mpd, "--out", mpd, "--per-category", 2), f"--out {mpd}", "input")
    assert _snapshot(mpd) == before


def test_challenge_out_holding_its_input_is_refused(world_dir, tmp_path, capsys):
    shutil.copytree(world_dir, tmp_path / "data" / "mpd")
    before = _snapshot(tmp_path / "data")
    code, err = run(capsys, "challenge", tmp_path / "data" / "mpd", "--out", tmp_path / "data", "--per-category", 2)
    assert_user_error(code, err, "input")
    assert _snapshot(tmp_path / "data") == before


def test_challenge_out_with_other_files_is_refused_and_they_are_kept(world_dir, tmp_path, capsys):
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    code, err = run(capsys, "challenge", world_dir, "--out", other, "--per-category", 2)
    assert_user_error(code, err, str(other), "not a challenge split", "new or empty folder")
    assert (other / "notes.txt").read_text() == "keep me" and [p.name for p in other.iterdir()] == ["notes.txt"]


def test_challenge_replaces_its_own_split_including_one_made_before_split_json(world_dir, tmp_path, capsys):
    out = tmp_path / "split"
    assert run(capsys, "challenge", world_dir, "--out", out, "--per-category", 2)[0] == 0
    assert orjson.loads((out / "split.json").read_bytes())["format"].startswith("challenge-split/")
    (out / "split.json").unlink()  # a split written by an earlier version
    assert run(capsys, "challenge", world_dir, "--out", out, "--per-category", 3)[0] == 0
    assert orjson.loads((out / "split.json").read_bytes())["test_playlists"] == 30


def test_ingest_out_inside_its_input_is_accepted_and_holding_it_refused(world_dir, tmp_path, capsys):
    mpd = tmp_path / "data" / "mpd"
    shutil.copytree(world_dir, mpd)
    before = _snapshot(mpd)
    assert run(capsys, "ingest", mpd, "--out", mpd / "store")[0] == 0  # a new folder beside the slices: harmless
    assert_user_error(*run(capsys, "ingest", mpd, "--out", tmp_path / "data"), "holds the input")
    assert {k: v for k, v in _snapshot(mpd).items() if not k.startswith("store/")} == before


def test_world_never_deletes_slices_it_did_not_write(tmp_path, capsys):
    real = _write_slices(tmp_path / "real", [_pl(0)])
    before = _snapshot(real)
    code, err = run(capsys, "world", "--playlists", 20, "--out", real)
    assert_user_error(code, err, str(real), "not a playlist world")
    assert _snapshot(real) == before
    # its own folder, with or without the world.json of this version, is replaced
    out = tmp_path / "w"
    assert run(capsys, "world", "--playlists", 20, "--out", out)[0] == 0
    assert orjson.loads((out / "world.json").read_bytes())["format"].startswith("playlist-world/")
    (out / "world.json").unlink()
    assert run(capsys, "world", "--playlists", 30, "--seed", 1, "--out", out)[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["mpd.slice.0-29.json", "world.json"]


# the two tests below build stand-in bundles by hand on purpose: a folder that only looks like one is the point
def test_content_fit_does_not_write_into_a_model_bundle(tmp_path, capsys):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text('{"format": "playlist-bundle/1"}')
    code, err = run(capsys, "content", "fit", "--out", bundle)
    assert_user_error(code, err, "not a content model")
    assert (bundle / "manifest.json").read_text() == '{"format": "playlist-bundle/1"}'


def test_train_two_tower_refuses_a_full_bundle_and_foreign_files(world_dir, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    (bundle / "two_tower").mkdir(parents=True)
    (bundle / "manifest.json").write_text('{"format": "playlist-bundle/1"}')
    code, err = run(capsys, "train-two-tower", "--mpd", world_dir, "--out", bundle, "--epochs", 1)
    assert_user_error(code, err, "not a two-tower bundle")
    assert sorted(p.name for p in bundle.iterdir()) == ["manifest.json", "two_tower"]


def test_train_refuses_its_input_before_reading_it(tmp_path, capsys):
    mpd = _write_slices(tmp_path / "mpd", [_pl(0)])
    assert_user_error(*run(capsys, "train", "--mpd", mpd, "--out", tmp_path), "holds the input")


# --- item 4: one validation path for slices -------------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["ingest", "{mpd}", "--out", "{tmp}/store"],
    ["challenge", "{mpd}", "--out", "{tmp}/split", "--per-category", "1"],
    ["stats", "{mpd}"],
    ["submit", "popularity", "--train", "{mpd}", "--challenge", "{tmp}/c.json", "--out", "{tmp}/sub.csv"],
])
def test_a_pid_twice_across_slices_is_refused_by_every_command(tmp_path, capsys, command):
    mpd = _write_slices(tmp_path / "mpd", [_pl(0), _pl(7)], [_pl(8), _pl(7)])
    (tmp_path / "c.json").write_bytes(orjson.dumps({"playlists": [{"pid": 99, "tracks": []}]}))
    argv = [a.format(mpd=mpd, tmp=tmp_path) for a in command]
    code, err = run(capsys, *argv)
    assert_user_error(code, err, "mpd.slice.1000-1999.json, playlist #1, pid 7, field 'pid'",
                      "also in mpd.slice.0-999.json (playlist #1)")
    assert not (tmp_path / "store").exists() and not (tmp_path / "split").exists()


def test_challenge_refuses_a_slice_copied_under_a_second_name(world_dir, tmp_path, capsys):
    mpd = tmp_path / "mpd"
    shutil.copytree(world_dir, mpd)
    (first,) = mpd.glob("mpd.slice.*.json")
    shutil.copy(first, mpd / "mpd.slice.1000-1399.json")  # the same playlists twice
    code, err = run(capsys, "challenge", mpd, "--out", tmp_path / "split", "--per-category", 2)
    assert_user_error(code, err, "mpd.slice.1000-1399.json, playlist #0, pid 0, field 'pid'",
                      f"also in {first.name} (playlist #0)")
    assert not (tmp_path / "split").exists()


def test_a_pid_twice_in_one_slice_names_both_places(tmp_path, capsys):
    mpd = _write_slices(tmp_path / "mpd", [_pl(0), _pl(5), _pl(5)])
    code, err = run(capsys, "ingest", mpd, "--out", tmp_path / "store")
    assert_user_error(code, err, "playlist #2, pid 5", "earlier in this file (playlist #1)")


# --- item 5: errors fail early, name the file, playlist and field, and lose nothing ------------------------

@pytest.fixture()
def submission(split_dir, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    assert run(capsys, "submit", "popularity", "--train", split_dir / "train", "--challenge",
               split_dir / "challenge_set.json", "--out", out)[0] == 0
    return out


@pytest.mark.parametrize("truth, parts", [
    (b"[1, 2]", ["must be a JSON object"]),
    (b'{"5": {"category": "title_only", "tracks": null}}', ["pid 5, field 'tracks'", "non-empty list"]),
    (b'{"5": {"category": "title_only"}}', ["pid 5, field 'tracks'", "missing"]),
    (b'{"5": {"tracks": ["' + _uri(1).encode() + b'"]}}', ["pid 5, field 'category'"]),
    (b"{}", ["holds no playlists"]),
    (b'{"5": {"category": "title_only", "tracks": ["spotify:tr', ["not valid JSON", "is the file complete"]),
])
def test_evaluate_names_the_truth_file_and_what_is_wrong(submission, tmp_path, capsys, truth, parts):
    bad = tmp_path / "bad_truth.json"
    bad.write_bytes(truth)
    code, err = run(capsys, "evaluate", submission, "--truth", bad)
    assert_user_error(code, err, str(bad), *parts)


def test_evaluate_names_a_missing_file(split_dir, tmp_path, capsys):
    (tmp_path / "sub.csv").write_text("team_info,a,b,c\n")
    assert_user_error(*run(capsys, "evaluate", tmp_path / "sub.csv", "--truth", tmp_path / "nope.json"),
                      f"{tmp_path / 'nope.json'} does not exist")
    assert_user_error(*run(capsys, "evaluate", tmp_path / "nope.csv", "--truth", split_dir / "truth.json"),
                      f"{tmp_path / 'nope.csv'} does not exist")
    assert_user_error(*run(capsys, "evaluate", tmp_path / "sub.csv", "--truth", split_dir / "truth.json",
                           "--tracks", tmp_path / "nope-artists.json"), f"{tmp_path / 'nope-artists.json'} does not")


@pytest.mark.parametrize("mutate, field", [
    (lambda pl: pl["tracks"][1].__setitem__("album_uri", 12), "field 'album_uri': track 1: must be a string"),
    (lambda pl: pl.__setitem__("num_followers", 10**12), "field 'num_followers': 1000000000000 is out of range"),
    (lambda pl: pl.__setitem__("modified_at", "yesterday"), "field 'modified_at': must be an integer"),
    (lambda pl: pl.__setitem__("pid", 2**63), "field 'pid': 9223372036854775808 is out of range"),
    (lambda pl: pl.__setitem__("description", ["x"]), "field 'description': must be a string"),
])
def test_ingest_names_file_playlist_and_field_of_a_bad_value_and_keeps_the_store(tmp_path, capsys, mutate, field):
    good = _write_slices(tmp_path / "good", [_pl(0), _pl(1)])
    store = tmp_path / "store"
    assert run(capsys, "ingest", good, "--out", store)[0] == 0
    before = _snapshot(store)
    bad_pl = _pl(1)
    mutate(bad_pl)
    bad = _write_slices(tmp_path / "bad", [_pl(0), bad_pl])
    code, err = run(capsys, "ingest", bad, "--out", store)
    assert_user_error(code, err, "bad/mpd.slice.0-999.json, playlist #1", field)
    assert _snapshot(store) == before


def test_ingest_of_slices_without_playlists_keeps_the_store(tmp_path, capsys):
    store = tmp_path / "store"
    assert run(capsys, "ingest", _write_slices(tmp_path / "good", [_pl(0)]), "--out", store)[0] == 0
    before = _snapshot(store)
    empty = _write_slices(tmp_path / "empty", [], [])
    assert_user_error(*run(capsys, "ingest", empty, "--out", store), str(empty), "holds no playlists",
                      "all 2 slice files")
    assert _snapshot(store) == before


def test_challenge_and_train_on_zero_playlists_fail_before_any_work(tmp_path, capsys):
    empty = _write_slices(tmp_path / "empty", [])
    assert_user_error(*run(capsys, "challenge", empty, "--out", tmp_path / "split"), "holds no playlists")
    assert_user_error(*run(capsys, "train", "--mpd", empty, "--out", tmp_path / "b"), "holds no playlists")
    assert not (tmp_path / "split").exists() and not (tmp_path / "b").exists()


def test_train_on_a_store_without_playlists_fails_before_training(tmp_path, capsys):
    from modules.store import MANIFEST, STORE_FORMAT

    store = tmp_path / "store"  # as ingest wrote it before it refused empty slices
    store.mkdir()
    (store / MANIFEST).write_bytes(orjson.dumps({"format": STORE_FORMAT, "playlists": 0, "fingerprint": "0"}))
    assert_user_error(*run(capsys, "train", "--mpd", store, "--out", tmp_path / "b"), f"{store} holds no playlists")


def test_train_checks_its_parameters_before_reading_the_playlists(tmp_path, capsys):
    missing = tmp_path / "not-read-yet"
    _write_slices(missing, [_pl(0)])
    code, err = run(capsys, "train", "--mpd", missing, "--out", tmp_path / "b", "--params", '{"n_candidatez": 9}')
    assert_user_error(code, err, "unknown hybrid parameters ['n_candidatez']")
    code, err = run(capsys, "train", "--mpd", missing, "--out", tmp_path / "b", "--params",
                    '{"two_tower": {"epochs": 0}}')
    assert_user_error(code, err, "two_tower parameters", "'epochs'")


def test_recommend_and_submit_check_the_out_folder_before_computing(split_dir, tmp_path, capsys):
    out = tmp_path / "missing" / "sub.csv"
    code, err = run(capsys, "recommend", "--model", tmp_path / "no-model", "--challenge",
                    split_dir / "challenge_set.json", "--out", out)
    assert_user_error(code, err, f"{tmp_path / 'missing'} does not exist")  # before the model is even loaded
    code, err = run(capsys, "submit", "popularity", "--train", tmp_path / "no-train", "--challenge",
                    split_dir / "challenge_set.json", "--out", out)
    assert_user_error(code, err, f"{tmp_path / 'missing'} does not exist")  # before the training data is read


def test_submit_refuses_to_write_over_its_challenge_set(split_dir, tmp_path, capsys):
    challenge = tmp_path / "c.json"
    shutil.copy(split_dir / "challenge_set.json", challenge)
    before = challenge.read_bytes()
    code, err = run(capsys, "submit", "popularity", "--train", split_dir / "train", "--challenge", challenge,
                    "--out", challenge)
    assert_user_error(code, err, "is the input")
    assert challenge.read_bytes() == before


# --- the errors module: user errors are one line, bugs show their traceback --------------------------------------

def test_every_error_class_of_the_package_is_a_user_error():
    classes = {}
    for info in pkgutil.walk_packages(modules.__path__, "modules."):
        if info.name.endswith("__main__"):
            continue
        mod = importlib.import_module(info.name)
        for name, obj in inspect.getmembers(mod, inspect.isclass):
            if issubclass(obj, Exception) and obj.__module__ == info.name and not name.startswith("_"):
                classes[f"{info.name}.{name}"] = obj
    assert set(classes) >= {"modules.errors.UserError", "modules.errors.RulesError", "modules.errors.ServiceError"}
    assert all(k.startswith("modules.errors.") for k in classes), sorted(classes)  # one file defines them all
    not_user = sorted(k for k, c in classes.items() if not issubclass(c, UserError))
    assert not_user == [  # calling a model before fit is a bug in the caller; the Spotify signals never leave it
        "modules.errors.NotFittedError", "modules.errors.SpotifyForbidden", "modules.errors.SpotifyUnavailable"]
    for name, cls in classes.items():  # code that caught ValueError & co. keeps catching them
        if name in not_user:
            continue
        assert cls is UserError or issubclass(cls, (ValueError, FileNotFoundError, FileExistsError)), name


def test_a_bug_shows_its_traceback(monkeypatch, tmp_path):
    def bug(args):
        raise ValueError("a bug in our code, not the user's input")

    monkeypatch.setattr("modules.cli.data.cmd_stats", bug)
    with pytest.raises(ValueError, match="a bug in our code"):
        main(["stats", str(tmp_path)])


def test_verbose_shows_the_traceback_of_a_user_error_too(tmp_path, capsys):
    code = main(["-v", "stats", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" in err and err.rstrip().splitlines()[-1].startswith("error: ")
