"""Recommend: pick a playlist from the data or build one, then continue it (cards, weights, export)."""

import hashlib
import time

import streamlit as st

from modules import explore
from streamlit_app import common

rec = common.recommender()
path = str(rec.path)
cur = common.current()
names = st.session_state.setdefault("track_names", {})
built = st.session_state.setdefault("built", [])


def _add(uri: str, label: str) -> None:
    names[uri] = label
    if uri not in built:
        built.append(uri)


def _add_pasted() -> None:
    uris, rejected = explore.parse_track_refs(st.session_state.get("paste", ""))
    for u in uris:
        _add(u, rec.track_label(u))
    st.session_state["paste_rejected"] = rejected
    st.session_state["paste"] = ""


def _remove(uri: str) -> None:
    if uri in built:
        built.remove(uri)


def _set_title(owner, title: str) -> None:
    """A newly picked playlist brings its own title; the user's edits stand until the playlist changes."""
    if st.session_state.get("title_for") != owner or "title" not in st.session_state:
        st.session_state["title_for"] = owner
        st.session_state["title"] = title


def pick_playlist(store) -> tuple[list[str], int | None]:
    query = st.text_input("Search playlists by title", key="pl_query", placeholder="e.g. chill, workout, 2010")
    found = explore.search_playlists(store.playlists, query, limit=200)
    if found.empty:
        st.info(f"No playlist title contains every word of {query!r}.")
        _set_title(None, "")
        return [], None
    labels = {f"{r.name} · {r.num_tracks} tracks (pid {r.pid})": int(r.pid) for r in found.itertuples()}
    pid = labels[st.selectbox(f"Playlist ({len(found)} shown)", list(labels), key="pl_pick")]
    _set_title(pid, str(found.loc[found["pid"] == pid, "name"].iloc[0] or ""))
    tracks = explore.playlist_tracks(store, pid)
    n = len(tracks)
    if n > 1:
        n = st.slider("Seed with the playlist's first … tracks", 1, n, min(n, 10), key=f"pl_n-{pid}")
    seeds = tracks[:n]
    with st.expander(f"The {len(seeds)} seed tracks"):
        st.write("\n".join(f"{i}. {rec.track_label(u)}" for i, u in enumerate(seeds, 1)))
    return seeds, pid


def build_playlist() -> list[str]:
    _set_title("built", "")
    query = st.text_input("Search the catalog by track or artist", key="cat_query", placeholder="e.g. daft punk")
    if query.strip():
        hits = explore.search_tracks(rec, query, limit=8, store_path=common.features_path())
        if hits.empty:
            st.info(f"No track or artist matches {query!r}.")
        for r in hits.itertuples():
            label = f"{r.track_name} by {r.artist_name}"
            c1, c2 = st.columns([4, 1], vertical_alignment="center")
            c1.write(label + ("" if r.in_model else "  ·  *not in the training playlists*"))
            c2.button("Add", key=f"add-{r.track_uri}", on_click=_add, args=(r.track_uri, label),
                      disabled=r.track_uri in built)
    st.text_area("…or paste Spotify track links or URIs", key="paste", height=80,
                 placeholder="https://open.spotify.com/track/…  or  spotify:track:…")
    st.button("Add pasted tracks", on_click=_add_pasted, key="add_pasted")
    if st.session_state.get("paste_rejected"):
        st.warning("Not track links or URIs, skipped: " + ", ".join(st.session_state["paste_rejected"][:5]))
    if built:
        st.write(f"**Your playlist: {len(built)} tracks**")
        for u in list(built):
            c1, c2 = st.columns([4, 1], vertical_alignment="center")
            c1.write(names.get(u) or rec.track_label(u))
            c2.button("Remove", key=f"rm-{u}", on_click=_remove, args=(u,))
        st.button("Clear the playlist", on_click=built.clear, key="clear")
    return list(built)


def weight_sliders(mode: str) -> dict[str, float]:
    known = rec.audio_features
    if not known:
        return {}
    feats = [f for f in common.WEIGHT_FEATURES if f in known]
    weights = {}
    with st.expander("Feature weights: what matters more to you", expanded=False):
        if mode == "collaborative":
            st.caption("Weights re-rank the similarity ranking; shuffle mode shows the collaborative candidates "
                       "as they come.")
        cols = st.columns(2)
        for i, f in enumerate(feats):
            with cols[i % 2]:
                weights[f] = st.slider(f, 0.0, 3.0, 1.0, 0.25, key=f"w-{f}", disabled=mode == "collaborative")

        def _reset():
            for f in feats:
                st.session_state[f"w-{f}"] = 1.0

        st.button("Reset weights", on_click=_reset, key="reset_w")
    return {f: w for f, w in weights.items() if w != 1.0} if mode == "hybrid" else {}


def show_results(seeds: list[str], pid, title: str, mode_label: str, k: int, weights: dict) -> None:
    if not st.session_state.get("asked"):
        st.info("Pick a playlist or build one, then press **Recommend**. The sliders and the mode re-rank the "
                "answer live.")
        return
    if not seeds and not title:
        st.warning("Add at least one track or a title first.")
        return
    t0 = time.perf_counter()
    frame = common.recommend(path, tuple(seeds), title, int(k), tuple(sorted(weights.items())),
                             common.MODES[mode_label])
    ms = (time.perf_counter() - t0) * 1000
    cur.update(seeds=list(seeds), title=title, pid=pid, results=frame)
    note = explore.status_note(explore.seed_status(rec, seeds), title or None)
    if note:
        st.info(note)
    st.subheader(f"{len(frame)} tracks to continue " + (f"“{title}”" if title else "your playlist"))
    st.caption(mode_label + (f", weights {weights}" if weights else "") + f" · answered in {ms:.0f} ms")
    common.render_cards(frame)
    line = explore.challenge_line(pid if pid is not None else 0, frame["track_uri"]) + "\n"
    c1, c2 = st.columns(2)
    c1.download_button("Download as a challenge line", line, mime="text/csv", key="dl_line",
                       file_name=f"continuation-{pid if pid is not None else 'mine'}.csv")
    c2.download_button("Download the table (CSV)", explore.results_csv(frame), file_name="recommendations.csv",
                       mime="text/csv", key="dl_csv")
    # drawn last: when this marker shows a new answer, every card above it is drawn (the browser test waits on it)
    answer = hashlib.sha1("\n".join(frame["track_uri"]).encode()).hexdigest()[:12]
    st.markdown(f'<div class="rec-done" data-answer="{answer}"></div>', unsafe_allow_html=True)


st.title("Continue a playlist")
controls, results = st.columns([2, 3], gap="large")
with controls:
    store = common.playlist_store(rec)
    sources = ["Pick a playlist", "Build your own"] if store is not None else ["Build your own"]
    if store is None:
        st.caption("The bundle's training playlists are not on this machine (set PLAYLIST_DATA to a slice folder "
                   "or store to pick from them); build a playlist from the catalog instead.")
    source = st.radio("Start from", sources, horizontal=True, key="source")
    seeds, pid = pick_playlist(store) if source == "Pick a playlist" else (build_playlist(), None)
    title = st.text_input("Title (optional)", key="title",
                          help="The title alone is enough: 'rainy day jazz' gets recommendations without any track.")
    mode_label = st.radio("Mode", list(common.MODES), horizontal=True, key="mode",
                          help="ranked by similarity: the full hybrid (two-tower, rules, audio and tag similarity, "
                               "learned fusion). shuffle: the two-tower's collaborative candidates only, in its "
                               "order.")
    k = st.slider("How many tracks", 3, 60, 12, step=3, key="k")
    weights = weight_sliders(common.MODES[mode_label])
    if st.button("Recommend", type="primary", key="go"):
        st.session_state["asked"] = True
with results:
    show_results(seeds, pid, title.strip(), mode_label, k, weights)
