"""What every page shares: where things are, the cached bundle and tables, and the result cards.

Paths (first match wins):

* bundle: ``--model DIR`` after ``--`` on the ``streamlit run`` line, env ``PLAYLIST_MODEL``, ``models/world``;
* song feature store (album art, catalog search): env ``PLAYLIST_FEATURES``, ``data/cache/features.sqlite``;
* playlists to pick from: env ``PLAYLIST_DATA``, else the bundle's training data (its manifest);
* catalog map: env ``PLAYLIST_MAP``, ``data/cache/feature_map.parquet`` (``features map``), else one is computed
  over the bundle's tracks;
* benchmark results: env ``PLAYLIST_BENCHMARKS``, ``benchmarks/results``;
* playlists to train a missing bundle on (the first page offers it): env ``PLAYLIST_TRAIN_DATA``, else
  ``data/world`` when it exists, with seed ``PLAYLIST_TRAIN_SEED`` (0); ``PLAYLIST_TRAIN_AUTOSTART=1`` (set by
  ``make demo``) starts it at once.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import logging
import os
import sys
from pathlib import Path

import pandas as pd
import streamlit as st

from modules import explore
from modules.paths import DATA_DIR, MODELS_DIR, REPO_ROOT

log = logging.getLogger("streamlit_app")

TRAIN_COMMAND = "python -m modules train --mpd data/world --out models/world"
WORLD_COMMAND = "python -m modules world --playlists 3000 --seed 0 --out data/world"
# Listener-facing features for the weight sliders, in the order people think of them.
WEIGHT_FEATURES = ("energy", "danceability", "valence", "acousticness", "instrumentalness", "speechiness",
                   "liveness", "tempo", "loudness")
MODES = {"ranked by similarity": "hybrid", "shuffle": "collaborative"}


# -- where things are ----------------------------------------------------------------------------------------------

def _cli_model() -> str | None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--model")
    args, _ = parser.parse_known_args(sys.argv[1:])
    return args.model


def bundle_path() -> Path:
    """The bundle folder: ``--model``, then ``PLAYLIST_MODEL``, then ``models/world``."""
    return Path(_cli_model() or os.environ.get("PLAYLIST_MODEL") or MODELS_DIR / "world")


def training_source() -> Path | None:
    """The playlists a missing bundle can be trained on from the app: ``PLAYLIST_TRAIN_DATA``, else the demo's
    ``data/world`` when it exists."""
    src = os.environ.get("PLAYLIST_TRAIN_DATA")
    if src:
        return Path(src)
    world = DATA_DIR / "world"
    return world if (world / "world.json").is_file() else None


def training_seed() -> int:
    """The seed of a training started from the app (``PLAYLIST_TRAIN_SEED``, default 0)."""
    try:
        return int(os.environ.get("PLAYLIST_TRAIN_SEED") or 0)
    except ValueError:
        log.warning("PLAYLIST_TRAIN_SEED=%r is not an integer: training with seed 0",
                    os.environ["PLAYLIST_TRAIN_SEED"])
        return 0


def features_path() -> Path:
    return Path(os.environ.get("PLAYLIST_FEATURES") or DATA_DIR / "cache" / "features.sqlite")


def benchmarks_path() -> Path:
    return Path(os.environ.get("PLAYLIST_BENCHMARKS") or REPO_ROOT / "benchmarks" / "results")


def map_path() -> Path | None:
    path = Path(os.environ.get("PLAYLIST_MAP") or DATA_DIR / "cache" / "feature_map.parquet")
    return path if path.is_file() else None


def data_source(manifest: dict, bundle: Path | None = None) -> Path | None:
    """The playlists offered in the picker: ``PLAYLIST_DATA`` or the bundle's training data, if it exists.

    A relative training path (``data/world``) is looked up from the working directory, the repository, and the
    checkout the bundle sits in (``<checkout>/models/<name>``).
    """
    src = os.environ.get("PLAYLIST_DATA") or manifest.get("data", {}).get("source")
    if not src:
        return None
    path = Path(src)
    if path.is_absolute():
        return path if path.exists() else None
    bases = [Path.cwd(), REPO_ROOT] + ([Path(bundle).resolve().parent.parent] if bundle else [])
    return next((b / path for b in bases if (b / path).exists()), None)


# -- cached loaders ----------------------------------------------------------------------------------------------

@st.cache_resource(show_spinner="Loading the model bundle…")
def load_recommender(path: str):
    """The bundle, loaded once per server process (TensorFlow and the parts take a few seconds)."""
    from modules.recommender import Recommender

    rec = Recommender.load(path)
    rec.recommend([], "warm up", k=5, explain=5)  # traces the TensorFlow functions now, not on the first click
    return rec


def try_recommender():
    """``(recommender, None)`` or ``(None, error message)`` for the configured bundle."""
    from modules.errors import BundleError

    path = bundle_path()
    try:
        return load_recommender(str(path)), None
    except BundleError as err:
        return None, str(err)


def recommender():
    """The loaded bundle (pages run only when it loaded, see app.py)."""
    rec, err = try_recommender()
    if rec is None:
        st.error(err)
        st.stop()
    return rec


@st.cache_resource(show_spinner="Reading the playlists…")
def load_store(source: str):
    from modules.store import open_store

    return open_store(source)


def playlist_store(rec):
    """The playlist store behind the picker, or ``None`` when the training data is not on this machine."""
    src = data_source(rec.manifest, rec.path)
    if src is None:
        return None
    try:
        return load_store(str(src))
    except Exception as err:  # a moved or partial data folder must not take the page down
        log.warning("cannot read playlists from %s: %s", src, err)
        return None


@st.cache_data(show_spinner=False, max_entries=256)
def recommend(path: str, seeds: tuple[str, ...], title: str, k: int, weights: tuple[tuple[str, float], ...],
              mode: str) -> pd.DataFrame:
    """``Recommender.recommend`` memoized on its inputs: moving a slider back is instant."""
    return load_recommender(path).recommend(list(seeds), title or None, k, dict(weights) or None, mode=mode,
                                            explain=k)


@st.cache_data(show_spinner="Drawing the map…")
def load_map(path: str, map_file: str | None) -> tuple[pd.DataFrame, dict]:
    """The catalog map from ``features map`` when there is one, else one over the bundle's tracks."""
    if map_file:
        from modules.content import read_feature_map

        return read_feature_map(map_file)
    return explore.bundle_map(load_recommender(path))


@st.cache_data(show_spinner=False)
def load_features(path: str) -> pd.DataFrame:
    return explore.track_features(load_recommender(path))


@st.cache_resource(show_spinner="Indexing the rules…")
def load_rules(path: str):
    rec = load_recommender(path)
    rules = rec.rule_model.rules if rec.rule_model is not None else rec.bundle.rules_file
    return explore.RuleTable(rules, rec.track_labels)


@st.cache_data(show_spinner=False)
def load_benchmarks(root: str) -> pd.DataFrame:
    return explore.benchmark_results(root)


@st.cache_data(show_spinner=False, ttl=60)
def art_urls(uris: tuple[str, ...], store: str) -> dict:
    return explore.album_art(uris, store)


# -- the current playlist (shared by the Recommend and Explore pages) ----------------------------------------------

def current() -> dict:
    """The playlist being continued and its last results, kept across pages in ``st.session_state``."""
    return st.session_state.setdefault("current", {"seeds": [], "title": "", "pid": None, "results": None})


# -- cards -------------------------------------------------------------------------------------------------------

def one_line(text: str, width: int = 80) -> str:
    """The gist of an explanation for a card (the full text shows on hover): its first clause (a rule's is
    already short: "in 23 of 41 playlists with A", ``modules.rules.explain``), cut at ``width`` characters."""
    first = str(text or "").strip().split("; ")[0]
    return first if len(first) <= width else first[: width - 1].rstrip() + "…"


def placeholder_art(seed: str, label: str) -> str:
    """An inline cover (gradient and initials) for tracks without album art: works offline."""
    digest = hashlib.sha1(seed.encode()).digest()
    hue1, hue2 = digest[0] * 360 // 256, digest[1] * 360 // 256
    initials = "".join(w[0] for w in label.split()[:2]).upper() or "♪"
    return (f'<div class="rec-art" style="aspect-ratio:1/1;border-radius:8px;display:flex;align-items:center;'
            f'justify-content:center;font-size:2.2rem;font-weight:700;color:white;background:linear-gradient('
            f'135deg,hsl({hue1},55%,45%),hsl({hue2},60%,30%))">{html.escape(initials)}</div>')


def card_html(row: pd.Series, art: str | None) -> str:
    """A result card as one HTML block (one element per card keeps reruns light): cover, rank, track, artist,
    score and its parts, and the one-line why (the full explanation on hover)."""
    name, artist = str(row["track_name"] or row["track_uri"]), str(row["artist_name"] or "")
    cover = (f'<img class="rec-art" src="{html.escape(art)}" alt="" style="width:100%;aspect-ratio:1/1;'
             f'object-fit:cover;border-radius:8px">' if art else placeholder_art(artist or name, artist or name))
    parts = [f"score {row['score']:.3f}"]
    parts += [f"{n} {row[n]:.2f}" for n in ("retrieval", "rules", "content") if pd.notna(row.get(n))]
    why = str(row.get("explanation") or "")
    why_html = (f'<div class="rec-why" title="{html.escape(why)}" style="font-size:.85rem;margin-top:.3rem">'
                f'Why: {html.escape(one_line(why))}</div>' if why else "")
    return (f'<div class="rec-card" data-uri="{html.escape(row["track_uri"])}">{cover}'
            f'<div style="margin-top:.4rem;font-weight:600">#{int(row["rank"])} {html.escape(name)}</div>'
            f'<div style="opacity:.8">{html.escape(artist)}</div>'
            f'<div style="font-size:.8rem;opacity:.65;margin-top:.2rem">{" · ".join(parts)}</div>{why_html}</div>')


def render_card(row: pd.Series, art: str | None) -> None:
    """One result card, with Spotify's player loaded only when the user asks for it."""
    with st.container(border=True):
        st.markdown(card_html(row, art), unsafe_allow_html=True)
        url = explore.embed_url(row["track_uri"])
        if url and st.toggle("▶ Play", key=f"play-{row['track_uri']}"):
            st.iframe(url, height=80)


def render_cards(frame: pd.DataFrame, columns: int = 3) -> None:
    arts = art_urls(tuple(frame["track_uri"]), str(features_path()))
    for start in range(0, len(frame), columns):
        cols = st.columns(columns)
        for col, (_, row) in zip(cols, frame.iloc[start:start + columns].iterrows()):
            with col:
                render_card(row, arts.get(row["track_uri"]))
