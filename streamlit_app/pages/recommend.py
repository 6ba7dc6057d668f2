"""Recommend: pick a playlist from the data or build one, then continue it (cards, weights, export)."""

import time

import streamlit as st

from modules import explore
from streamlit_app import common

rec = common.recommender()
path = str(rec.path)
cur = common.current()
names = st.session_state.setdefault("track_names", {})
built = st.session_state.setdefault("built", [])

st.title("Continue a playlist")
store = common.playlist_store(rec)
sources = ["Pick a playlist", "Build your own"] if store is not None else ["Build your own"]
if store is None:
    st.caption("The bundle's training playlists are not on this machine (set PLAYLIST_DATA to a slice folder or "
               "store to pick from them); build a playlist from the catalog instead.")
source = st.radio("Start from", sources, horizontal=True, key="source")


def _add(uri: str, label: str) -> None:
    names[uri] = label
    if uri not in built:
        built.append(uri)


def _add_pasted() -> None:
    uris, rejected = explore.parse_track_refs(st.session_state.get("paste", ""))
    for u in uris:
        _add(u, rec._names.get(u, u))
    st.session_state["paste_rejected"] = rejected
    st.session_state["paste"] = ""


def _remove(uri: str) -> None:
    if uri in built:
        built.remove(uri)


pid, default_title = None, ""
if source == "Pick a playlist":
    query = st.text_input("Search playlists by title", key="pl_query", placeholder="e.g. chill, workout, 2010")
    found = explore.search_playlists(store.playlists, query, limit=200)
    if found.empty:
        st.info(f"No playlist title contains every word of {query!r}.")
        seeds = []
    else:
        labels = {int(r.pid): f"{r.name} · {r.num_tracks} tracks (pid {r.pid})" for r in found.itertuples()}
        pid = st.selectbox(f"Playlist ({len(found)} shown)", list(labels), format_func=labels.get, key="pl_pick")
        tracks = explore.playlist_tracks(store, pid)
        default_title = str(found.loc[found["pid"] == pid, "name"].iloc[0] or "")
        n = len(tracks)
        if n > 1:
            n = st.slider("Seed with the playlist's first … tracks", 1, len(tracks), min(len(tracks), 10),
                          key=f"pl_n-{pid}")
        seeds = tracks[:n]
        with st.expander(f"The {len(seeds)} seed tracks"):
            st.write("\n".join(f"{i}. {rec._names.get(u, u)}" for i, u in enumerate(seeds, 1)))
else:
    query = st.text_input("Search the catalog by track or artist", key="cat_query", placeholder="e.g. daft punk")
    if query.strip():
        hits = explore.search_tracks(rec, query, limit=8, store_path=common.features_path())
        if hits.empty:
            st.info(f"No track or artist matches {query!r}.")
        for r in hits.itertuples():
            label = f"{r.track_name} by {r.artist_name}"
            c1, c2 = st.columns([5, 1], vertical_alignment="center")
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
            c1, c2 = st.columns([5, 1], vertical_alignment="center")
            c1.write(names.get(u) or rec._names.get(u, u))
            c2.button("Remove", key=f"rm-{u}", on_click=_remove, args=(u,))
        st.button("Clear the playlist", on_click=built.clear, key="clear")
    seeds = list(built)

title = st.text_input("Title (optional)", value=default_title, key=f"title-{pid}",
                      help="The title alone is enough: 'rainy day jazz' gets recommendations without any track.")
mode_label = st.radio("Mode", list(common.MODES), horizontal=True, key="mode",
                      help="ranked by similarity: the full hybrid (two-tower, rules, audio and tag similarity, "
                           "learned fusion). shuffle: the two-tower's collaborative candidates only, in its order.")
mode = common.MODES[mode_label]
k = st.slider("How many tracks", 3, 60, 12, step=3, key="k")

content = rec.hybrid.content_
weights = {}
if content is not None:
    feats = [f for f in common.WEIGHT_FEATURES if f in content.features]
    with st.expander("Feature weights: what matters more to you", expanded=False):
        if mode == "collaborative":
            st.caption("Weights re-rank the similarity ranking; shuffle mode shows the collaborative candidates "
                       "as they come.")
        cols = st.columns(3)
        for i, f in enumerate(feats):
            with cols[i % 3]:
                weights[f] = st.slider(f, 0.0, 3.0, 1.0, 0.25, key=f"w-{f}", disabled=mode == "collaborative")

        def _reset():
            for f in feats:
                st.session_state[f"w-{f}"] = 1.0

        st.button("Reset weights", on_click=_reset, key="reset_w")
weights = {f: w for f, w in weights.items() if w != 1.0} if mode == "hybrid" else {}

if st.button("Recommend", type="primary", key="go"):
    st.session_state["asked"] = True

if st.session_state.get("asked"):
    if not seeds and not title.strip():
        st.warning("Add at least one track or a title first.")
        st.stop()
    t0 = time.perf_counter()
    frame = common.recommend(path, tuple(seeds), title.strip(), int(k), tuple(sorted(weights.items())), mode)
    ms = (time.perf_counter() - t0) * 1000
    cur.update(seeds=list(seeds), title=title.strip(), pid=pid, results=frame)
    note = explore.status_note(explore.seed_status(rec, seeds), title.strip() or None)
    if note:
        st.info(note)
    st.subheader(f"{len(frame)} tracks to continue {('“' + title.strip() + '”') if title.strip() else 'it'}")
    st.caption(f"{mode_label}" + (f", weights {weights}" if weights else "") + f" · answered in {ms:.0f} ms")
    common.render_cards(frame)
    c1, c2 = st.columns(2)
    c1.download_button("Download as a challenge line", explore.challenge_line(pid if pid is not None else 0,
                                                                              frame["track_uri"]) + "\n",
                       file_name=f"continuation-{pid if pid is not None else 'mine'}.csv", mime="text/csv",
                       key="dl_line")
    c2.download_button("Download the table (CSV)", explore.results_csv(frame), file_name="recommendations.csv",
                       mime="text/csv", key="dl_csv")
