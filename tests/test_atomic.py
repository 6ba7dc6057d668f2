"""A folder written through ``atomic_directory`` is old or complete, never half, and leaves no debris."""

import pytest

from modules.atomic import atomic_directory


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
