"""A folder written through ``atomic_directory`` is old or complete, never half, and leaves no debris."""

import pytest

from modules.atomic import FolderKind, atomic_directory, check_output_file, check_output_folder
from modules.errors import OutputError


def test_success_replaces_the_old_folder_and_leaves_nothing_beside_it(tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with atomic_directory(out) as tmp:
        assert tmp.parent == tmp_path and tmp != out and not any(tmp.iterdir())
        (tmp / "new.txt").write_text("new")
        assert (out / "old.txt").read_text() == "old"  # still the old one while writing
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_an_error_keeps_the_old_folder_and_removes_the_half_written_one(tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_directory(out) as tmp:
        (tmp / "half.txt").write_text("half")
        raise KeyboardInterrupt
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["bundle"]


def test_creates_missing_parents(tmp_path):
    out = tmp_path / "a" / "b" / "store"
    with atomic_directory(out) as tmp:
        (tmp / "x").write_text("1")
    assert (out / "x").read_text() == "1"


KIND = FolderKind("thing folder", "thing.json", "thing/")


def test_check_output_folder_accepts_new_empty_and_own_folders(tmp_path):
    assert check_output_folder(tmp_path / "new", KIND) == tmp_path / "new"
    (tmp_path / "empty").mkdir()
    check_output_folder(tmp_path / "empty", KIND)
    own = tmp_path / "own"
    own.mkdir()
    (own / "thing.json").write_text('{"format": "thing/7"}')  # any version of the format is ours
    (own / "data.bin").write_text("x")
    check_output_folder(own, KIND)


@pytest.mark.parametrize("marker", [None, '{"format": "other/1"}', "not json", '["thing/1"]'])
def test_check_output_folder_refuses_a_folder_that_is_not_ours(tmp_path, marker):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    if marker is not None:
        (out / "thing.json").write_text(marker)
    with pytest.raises(OutputError, match=r"out already holds files and is not a thing folder \(no thing.json\)"):
        check_output_folder(out, KIND)
    assert (out / "keep.txt").read_text() == "mine"


def test_check_output_folder_refuses_its_input_or_a_folder_holding_it_and_a_file(tmp_path):
    (tmp_path / "in").mkdir()
    with pytest.raises(OutputError, match="is the input"):
        check_output_folder(tmp_path / "in", KIND, inputs=[tmp_path / "in"])
    with pytest.raises(OutputError, match="holds the input"):
        check_output_folder(tmp_path, KIND, inputs=[None, tmp_path / "in" / "x.json"])
    check_output_folder(tmp_path / "in" / "out", KIND, inputs=[tmp_path / "in"])  # inside the input: harmless
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        check_output_folder(tmp_path / "f", KIND)
    also = FolderKind("thing folder", "thing.json", "thing/", also=lambda p: (p / "old.txt").exists())
    (tmp_path / "in" / "old.txt").write_text("written before thing.json existed")
    check_output_folder(tmp_path / "in", also)


def test_check_output_file(tmp_path):
    assert check_output_file(tmp_path / "sub.csv") == tmp_path / "sub.csv"
    with pytest.raises(OutputError, match=r"the folder .*missing does not exist; create it first"):
        check_output_file(tmp_path / "missing" / "sub.csv")
    check_output_file(tmp_path / "missing" / "sub.csv", make_parent=True)
    with pytest.raises(OutputError, match="is a folder"):
        check_output_file(tmp_path)
    with pytest.raises(OutputError, match="is the input"):
        check_output_file(tmp_path / "c.json", inputs=[tmp_path / "c.json"])
