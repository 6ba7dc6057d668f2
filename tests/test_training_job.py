"""Background training (modules.training_job) and the app's first page while it runs: real child processes."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from modules import training_job

APP = Path(__file__).resolve().parent.parent / "streamlit_app" / "app.py"

# A stand-in for `train` that behaves like it: logs, shows a progress bar, waits for `go`, then writes the bundle.
FAKE_TRAIN = """
import pathlib, sys, time
out, go, starts = map(pathlib.Path, sys.argv[1:4])
with open(starts, "a") as fh:
    fh.write("x")
print("hybrid: training the two-tower on 40 playlists", flush=True)
print("epoch 1:  10%|#   | 1/10\\repoch 1:  50%|#####  | 5/10", end="", flush=True)
while not go.exists():
    time.sleep(0.05)
out.mkdir()
(out / "manifest.json").write_text("{}")
"""


def _wait(out: Path, state: str, seconds: float = 60) -> training_job.JobStatus:
    deadline = time.monotonic() + seconds
    while (st := training_job.status(out)).state != state:
        assert time.monotonic() < deadline, f"still {st.state}, expected {state}: {st.tail}"
        time.sleep(0.1)
    return st


def _fake(tmp_path: Path) -> tuple[list[str], Path, Path, Path]:
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    out, go, starts = tmp_path / "models" / "world", tmp_path / "go", tmp_path / "starts"
    return [sys.executable, str(script), str(out), str(go), str(starts)], out, go, starts


def test_a_job_runs_once_shows_its_latest_lines_then_is_done(tmp_path):
    command, out, go, starts = _fake(tmp_path)
    assert training_job.status(out).state == "none"
    first = training_job.start(command, out)
    assert first.state == "running" and first.command == command
    # a second start (another browser tab, a restarted app) joins the running job instead of starting one
    assert training_job.start(command, out).state == "running"
    deadline = time.monotonic() + 30
    while "50%" not in "\n".join(training_job.status(out).tail):
        assert time.monotonic() < deadline, training_job.status(out).tail
        time.sleep(0.05)
    tail = training_job.status(out).tail
    # the progress bar's carriage returns split it: the last line is its latest state
    assert tail[0] == "hybrid: training the two-tower on 40 playlists" and tail[-1].startswith("epoch 1:  50%")
    assert training_job.status(out).elapsed >= 0
    go.touch()
    done = _wait(out, "done")
    assert done.log_path == training_job.job_files(out)["log"]
    assert starts.read_text() == "x"  # one child process, however many starts
    # a finished bundle is never trained over
    assert training_job.start(command, out).state == "done" and starts.read_text() == "x"


def test_a_job_that_ends_without_a_bundle_failed_and_can_be_started_again(tmp_path):
    out = tmp_path / "models" / "world"
    fail = [sys.executable, "-c", "import sys; print('error: no playlists in data/nowhere'); sys.exit(2)"]
    training_job.start(fail, out)
    failed = _wait(out, "failed")
    assert failed.tail == ["error: no playlists in data/nowhere"] and not out.exists()
    command, _, go, starts = _fake(tmp_path)
    assert training_job.start(command, out).state == "running"
    go.touch()
    _wait(out, "done")


def test_train_command_is_the_cli_train(tmp_path):
    cmd = training_job.train_command("data/world", tmp_path / "b", seed=3)
    assert cmd[1:] == ["-m", "modules", "train", "--mpd", "data/world", "--out", str(tmp_path / "b"), "--seed", "3"]


@pytest.fixture
def app_without_bundle(monkeypatch, tmp_path):
    out = tmp_path / "models" / "world"
    monkeypatch.setenv("PLAYLIST_MODEL", str(out))
    monkeypatch.setenv("PLAYLIST_TRAIN_DATA", str(tmp_path / "no-such-world"))
    monkeypatch.delenv("PLAYLIST_TRAIN_AUTOSTART", raising=False)
    return out


def _app():
    from streamlit.testing.v1 import AppTest

    return AppTest.from_file(str(APP), default_timeout=120)


def test_app_shows_the_running_training_then_the_app(app_without_bundle, tmp_path):
    command, out, go, _ = _fake(tmp_path)
    training_job.start(command, out)
    at = _app().run()
    assert not at.exception
    assert at.title[0].value == "Training the model"
    assert "hybrid: training the two-tower" in at.code[0].value
    go.touch()
    _wait(out, "done")
    # the stand-in wrote a manifest and nothing else: the app tries to load it and, as for any broken bundle,
    # says why on the first page (no rerun loop)
    at = _app().run()
    assert not at.exception
    assert at.title[0].value == "Train a model first" and at.error


def test_make_demo_autostart_runs_the_real_train_and_shows_its_error(app_without_bundle, monkeypatch):
    """``PLAYLIST_TRAIN_AUTOSTART=1`` (make demo) starts `python -m modules train` at once; with playlists that
    do not exist it fails, and the page shows train's own message with the way to try again."""
    monkeypatch.setenv("PLAYLIST_TRAIN_AUTOSTART", "1")
    at = _app().run()
    assert not at.exception
    _wait(app_without_bundle, "failed", seconds=120)
    at = _app().run()
    assert at.title[0].value == "Train a model first"
    assert "no-such-world" in at.code[0].value  # train's error names the missing folder
    assert any("Train it now" in b.label for b in at.button)
