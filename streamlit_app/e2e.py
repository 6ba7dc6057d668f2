"""Drive the demo in a real browser: start ``streamlit run`` headless on loopback, open it in headless Chromium
(Debian's ``/usr/bin/chromium`` through Playwright, never a downloaded browser), pick a playlist, ask for
recommendations and time how long the cards take to appear.

Used by ``tests/test_app_browser.py`` (on the tiny test bundle) and ``benchmarks/app_render.py`` (on a real
bundle, for the numbers in docs/app.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path

log = logging.getLogger(__name__)

APP = Path(__file__).resolve().parent / "app.py"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
CARD = ".rec-card"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(env: Mapping[str, str], *, port: int | None = None, timeout: float = 120.0,
          log_file: Path | None = None) -> Iterator[str]:
    """Run the app headless on 127.0.0.1 with ``env`` added to the environment; yields its URL.

    The server is stopped (its process only) on exit; its output goes to ``log_file`` when given.
    """
    port = port or free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true", "--server.port", str(port),
           "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    out = open(log_file, "wb") if log_file else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=APP.parent.parent, env={**os.environ, **env}, stdout=out,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with code {proc.returncode} before serving"
                                   + (f"; see {log_file}" if log_file else ""))
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"streamlit did not answer on {url} within {timeout:.0f} s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_file:
            out.close()


def launch(playwright):
    """Headless Chromium from Debian's package (no download)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


def card_uris(page) -> list[str]:
    return page.eval_on_selector_all(CARD, "els => els.map(e => e.dataset.uri)")


def wait_for_new_answer(page, before: str | None, count: int, timeout_ms: float) -> tuple[str, list[str]]:
    """Wait until the page shows an answer other than ``before`` with ``count`` cards, all drawn: the marker
    after the last card carries the answer's digest. Returns the digest and the cards' track URIs."""
    page.wait_for_function(
        """([before, count, sel]) => {
            const done = document.querySelector('.rec-done');
            return done && done.dataset.answer !== before && document.querySelectorAll(sel).length >= count;
        }""", arg=[before, count, CARD], timeout=timeout_ms)
    return page.eval_on_selector(".rec-done", "e => e.dataset.answer"), card_uris(page)


def answer_ms(page) -> float | None:
    """The server-side answer time the page reports ("answered in N ms"), to separate model from rendering."""
    text = page.get_by_text(re.compile(r"answered in \d+ ms")).first.inner_text()
    m = re.search(r"answered in (\d+) ms", text)
    return float(m.group(1)) if m else None


def search_playlists(page, query: str, timeout_ms: float = 60_000) -> None:
    """Type a title search into the picker (Enter submits it, which reruns the page)."""
    search = page.get_by_label("Search playlists by title")
    search.fill(query)
    search.press("Enter")
    page.get_by_role("combobox").first.wait_for(timeout=timeout_ms)
    page.wait_for_timeout(500)


def open_options(page):
    """Open the playlist picker; returns its options."""
    page.get_by_role("combobox").first.click()
    options = page.get_by_role("option")
    options.first.wait_for(timeout=30_000)
    return options


def recommend_session(page, url: str, *, query: str = "", k: int = 12, load_timeout_ms: float = 240_000,
                      screenshot: Path | None = None, switches: int = 3) -> dict:
    """Open the app, pick a playlist, ask for recommendations, then switch playlists ``switches`` times.

    Returns timings in seconds: ``page_load`` (until the page is usable, bundle loading included), ``first``
    (click on Recommend to all cards drawn, cold caches) and ``warm`` (choosing another playlist to its cards
    drawn: a new recommendation on a warm server, rendered in the browser), ``answer_ms`` (the server-side
    recommendation time of each answer, as the page reports it), with the first playlist and cards.
    """
    t0 = time.perf_counter()
    page.goto(url)
    page.get_by_role("button", name="Recommend").wait_for(timeout=load_timeout_ms)
    loaded = time.perf_counter() - t0
    search_playlists(page, query)
    options = open_options(page)
    label = options.nth(0).inner_text()
    options.nth(0).click()
    page.wait_for_timeout(500)
    t = time.perf_counter()
    page.get_by_role("button", name="Recommend").click()
    before, first_cards = wait_for_new_answer(page, None, k, load_timeout_ms)
    first = time.perf_counter() - t
    answers = [answer_ms(page)]
    warm = []
    for option in range(1, switches + 1):
        options = open_options(page)
        t = time.perf_counter()
        options.nth(option).click()
        before, _ = wait_for_new_answer(page, before, k, 60_000)
        warm.append(time.perf_counter() - t)
        answers.append(answer_ms(page))
    if screenshot is not None:
        page.mouse.move(0, 0)
        page.set_viewport_size({"width": page.viewport_size["width"], "height": 2000})  # the cards, not just the top
        page.wait_for_timeout(800)
        page.screenshot(path=str(screenshot), full_page=True)
    return {"page_load": loaded, "first": first, "warm": warm, "answer_ms": answers, "playlist": label,
            "cards": first_cards}
