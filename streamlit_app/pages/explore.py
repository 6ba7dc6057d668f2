"""Explore: the catalog on a 2-D map of its audio features, feature distributions, and where the current
playlist and its recommendations sit."""

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from modules import explore
from streamlit_app import common

MAX_POINTS = 15_000

rec = common.recommender()
path = str(rec.path)
cur = common.current()
st.title("Explore the catalog")
if rec.content_model is None:
    st.warning("This bundle has no content model, so there are no audio features to map.")
    st.stop()

map_file = common.map_path()
points, info = common.load_map(path, str(map_file) if map_file else None)
seeds = cur["seeds"]
recs = cur["results"]["track_uri"].tolist() if cur["results"] is not None else []
st.caption(
    (f"Map of the catalog from `{map_file}`" if map_file else "Map of the bundle's tracks")
    + f": {len(points):,} tracks, PCA of {len(info.get('features', []))} standardized audio features "
    f"(the two axes explain {sum(info.get('explained_variance', [0])):.0%} of the variance), "
    f"{len(info.get('clusters', []))} KMeans clusters. Hover a point for its track.")
if not seeds and not recs:
    st.info("Pick or build a playlist on the Recommend page to see where it sits on the map.")

shown = explore.sample_map(points, MAX_POINTS, seed=0, keep=[*seeds, *recs])
fig = px.scatter(shown, x="x", y="y", color="cluster_label", render_mode="webgl", opacity=0.45,
                 hover_data={"track_name": True, "artist_name": True, "x": False, "y": False},
                 labels={"cluster_label": "cluster", "x": "PC 1", "y": "PC 2"})
fig.update_traces(marker={"size": 4})
marks = explore.map_positions(points, {"playlist": seeds, "recommended": recs})
for group, symbol, colour in (("playlist", "star", "black"), ("recommended", "diamond", "red")):
    part = marks.loc[marks["group"] == group]
    if len(part):
        fig.add_trace(go.Scattergl(x=part["x"], y=part["y"], mode="markers", name=f"{group} ({len(part)})",
                                   text=part["track_name"] + " by " + part["artist_name"], hoverinfo="text",
                                   marker={"symbol": symbol, "size": 13, "color": colour,
                                           "line": {"width": 1, "color": "white"}}))
missing = len(set(seeds) | set(recs)) - len(marks)
fig.update_layout(height=620, legend={"itemsizing": "constant"}, margin={"l": 10, "r": 10, "t": 30, "b": 10})
st.plotly_chart(fig, key="map")
if missing > 0:
    st.caption(f"{missing} of the playlist's or recommended tracks have no audio features, so they are not on "
               "the map.")
with st.expander("Clusters and axes"):
    st.dataframe(info.get("clusters", []), hide_index=True)
    st.write("Loadings of the two axes (PC 1, PC 2):", info.get("components", {}))

st.subheader("Feature distributions")
features = common.load_features(path)
choices = [c for c in features.columns if c != "track_uri"]
default = [f for f in ("energy", "danceability", "valence", "acousticness") if f in choices]
picked = st.multiselect("Features", choices, default=default, key="dist_features")
groups = {"all tracks": features, "playlist": features.loc[features["track_uri"].isin(set(seeds))],
          "recommended": features.loc[features["track_uri"].isin(set(recs))]}
cols = st.columns(2)
for i, f in enumerate(picked):
    hist = go.Figure()
    for name, frame in groups.items():
        if len(frame):
            hist.add_trace(go.Histogram(x=frame[f], name=f"{name} ({len(frame)})", histnorm="probability density",
                                        opacity=0.55, nbinsx=40))
    hist.update_layout(barmode="overlay", title=f, height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    cols[i % 2].plotly_chart(hist, key=f"hist-{f}")
