"""The command line: --help lists the commands; bad input gives one clear line and exit status 2."""

import subprocess
import sys


def run(*args):
    return subprocess.run([sys.executable, "-m", "modules", *args], capture_output=True, text=True)


def test_help_lists_foundation_commands():
    out = run("--help")
    assert out.returncode == 0
    for cmd in ("world", "ingest", "challenge", "evaluate", "stats"):
        assert f"    {cmd}" in out.stdout


def test_help_does_not_import_tensorflow():
    code = "import sys; from modules.cli import build_parser; build_parser(); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bad_input_is_one_line_exit_2(tmp_path):
    out = run("ingest", str(tmp_path / "nope"), "--out", str(tmp_path / "s"))
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "does not exist" in out.stderr
    assert "Traceback" not in out.stderr
    out = run("world", "--playlists", "0", "--out", str(tmp_path / "w"))
    assert out.returncode == 2 and "--playlists must be at least 1" in out.stderr


def test_world_ingest_stats_end_to_end(tmp_path):
    out = run("world", "--playlists", "120", "--seed", "3", "--out", str(tmp_path / "w"))
    assert out.returncode == 0, out.stderr
    out = run("ingest", str(tmp_path / "w"), "--out", str(tmp_path / "s"))
    assert out.returncode == 0, out.stderr
    assert "120 playlists" in out.stdout and "MB/s" in out.stdout
    out = run("stats", str(tmp_path / "s"))
    assert out.returncode == 0 and "avg_playlist_length" in out.stdout and "66.346" in out.stdout
