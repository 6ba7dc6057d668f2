"""End to end: the real app (``streamlit run``, headless, loopback) in real headless Chromium on the tiny bundle.

Needs Debian's Chromium at /usr/bin/chromium (``make browser``); skipped with the reason when it is missing.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from streamlit_app import e2e

log = logging.getLogger(__name__)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(e2e.CHROMIUM).exists(),
                       reason=f"{e2e.CHROMIUM} is missing: install Debian's chromium (make browser) to run the "
                              "browser test"),
]


@pytest.fixture(scope="module")
def app_url(tiny_bundle, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    env = {"PLAYLIST_MODEL": str(tiny_bundle), "PLAYLIST_FEATURES": str(tmp / "no-features.sqlite"),
           "PLAYLIST_MAP": str(tmp / "no-map.parquet"), "PLAYLIST_BENCHMARKS": str(tmp / "no-results")}
    with e2e.serve(env, log_file=tmp / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = e2e.launch(p)
        yield b
        b.close()


def test_pick_a_playlist_and_get_cards(app_url, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    shot = tmp_path / "recommend.png"
    try:
        result = e2e.recommend_session(page, app_url, query="mix", screenshot=shot, switches=3)
    except Exception:
        page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
        log.error("browser test failed; screenshot at %s", tmp_path / "failure.png")
        raise
    log.warning("screenshot of the recommend page: %s", shot)
    log.warning("render times (s): page load %.1f, first answer %.2f, warm answers %s (server side: %s ms)",
                result["page_load"], result["first"], ", ".join(f"{t:.2f}" for t in result["warm"]),
                result["answer_ms"])
    cards = result["cards"]
    assert len(cards) == 12 and len(set(cards)) == 12
    assert all(c.startswith("spotify:track:") for c in cards)
    assert len(result["warm"]) == 3 and all(a is not None for a in result["answer_ms"])
    # each card shows a cover (placeholder offline), a title and a one-line why
    first = page.locator(e2e.CARD).first
    assert first.locator(".rec-art").count() == 1
    assert page.locator(".rec-why").count() >= 1
    assert shot.stat().st_size > 10_000
    assert not [e for e in errors if "spotify" not in e.lower()], errors
    page.close()


def test_explore_page_draws_the_map(app_url, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(app_url + "/explore")
    page.get_by_text("Explore the catalog").first.wait_for(timeout=240_000)
    page.locator(".js-plotly-plot").first.wait_for(timeout=120_000)
    assert page.locator(".js-plotly-plot").count() >= 2  # the map and the histograms
    page.screenshot(path=str(tmp_path / "explore.png"), full_page=True)
    log.warning("screenshot of the explore page: %s", tmp_path / "explore.png")
    page.close()


# A stand-in for the background `train` (modules.training_job): it waits for `go`, then writes the tiny bundle the
# way train does (complete folder first, then one rename).
COPY_TRAIN = """
import pathlib, shutil, sys, time
src, out, go = map(pathlib.Path, sys.argv[1:4])
print("two-tower: epoch 1 of 3", flush=True)
while not go.exists():
    time.sleep(0.05)
shutil.copytree(src, out.parent / ".partial")
(out.parent / ".partial").rename(out)
"""


def test_first_page_follows_the_training_then_opens_the_app(tiny_bundle, browser, tmp_path):
    """No bundle yet (``make demo`` on a fresh machine): the first page shows the training's progress and, when
    the bundle is written, becomes the app without a reload."""
    from playwright.sync_api import expect

    from modules import training_job

    out, go, script = tmp_path / "models" / "world", tmp_path / "go", tmp_path / "copy_train.py"
    script.write_text(COPY_TRAIN)
    training_job.start([sys.executable, str(script), str(tiny_bundle), str(out), str(go)], out)
    env = {"PLAYLIST_MODEL": str(out), "PLAYLIST_TRAIN_DATA": str(tmp_path / "world"),
           "PLAYLIST_FEATURES": str(tmp_path / "no-features.sqlite"), "PLAYLIST_MAP": str(tmp_path / "no-map.parquet"),
           "PLAYLIST_BENCHMARKS": str(tmp_path / "no-results")}
    with e2e.serve(env, log_file=tmp_path / "streamlit.log") as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_text("Training the model").first.wait_for(timeout=240_000)
        page.get_by_text("two-tower: epoch 1 of 3").first.wait_for(timeout=60_000)
        go.touch()
        # the progress fragment re-reads the job every 3 s and reruns the app once the bundle exists
        page.get_by_text("Continue a playlist").first.wait_for(timeout=240_000)
        # the progress page's elements stay (greyed) until the app's run ends, then go
        expect(page.get_by_text("Training the model")).to_have_count(0, timeout=240_000)
        page.screenshot(path=str(tmp_path / "after-training.png"), full_page=True)
        page.close()
