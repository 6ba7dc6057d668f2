"""Rules: browse the bundle's association rules, best supported first; filter, search by track, see a network."""

import plotly.graph_objects as go
import streamlit as st

from modules import explore
from streamlit_app import common

rec = common.recommender()
path = str(rec.path)
st.title("Association rules")
if rec.rule_model is None and not rec.bundle.rules_file.exists():
    st.warning("This bundle was trained without association rules.")
    st.stop()
table = common.load_rules(path)
ranges = table.ranges()
st.caption(f"{len(table):,} rules mined from {table.rules.n_playlists:,} training playlists: \"people who put A "
           "in a playlist also added B\". Count: playlists with all of them (the evidence); support: their share; "
           "confidence: share of the playlists with A that also have B; lift: how many times more often than chance "
           "(a rule from one or two playlists has a huge lift and says little).")

c1, c2, c3, c4, c5 = st.columns(5)
top_count = int(table.count.max()) if len(table) else 0
min_count = c1.number_input("Minimum count", min_value=0, max_value=max(top_count, 1), value=min(2, top_count),
                            step=1, key="r_count", help="Playlists a rule's tracks share; 2 hides the rules seen in "
                            "one playlist.")
lo, hi = ranges["support"]
min_support = c2.number_input("Minimum support", min_value=0.0, max_value=max(hi, 1e-9), value=lo,
                              format="%.4f", step=max((hi - lo) / 20, 1e-4), key="r_support")
min_confidence = c3.slider("Minimum confidence", 0.0, 1.0, 0.0, 0.05, key="r_conf")
lo, hi = ranges["lift"]
min_lift = c4.number_input("Minimum lift", min_value=0.0, max_value=max(hi, 1.0), value=0.0, step=1.0,
                           key="r_lift")
sort = c5.selectbox("Sort by", explore.RuleTable.SORTS, key="r_sort",
                    help="Count (the default) puts the rules seen in the most playlists first; ties by confidence.")
query = st.text_input("Search by track or artist", key="r_query", placeholder="e.g. killers")
shown, total = table.filter(min_support=min_support, min_confidence=min_confidence, min_lift=min_lift,
                            min_count=min_count, query=query, sort=sort, limit=500)
st.write(f"**{total:,} rules match** (the first {len(shown)} shown, highest {sort} first).")
st.dataframe(shown[["if", "then", "count", "confidence", "support", "lift"]], hide_index=True, height=320,
             column_config={"support": st.column_config.NumberColumn(format="%.4f"),
                            "confidence": st.column_config.NumberColumn(format="%.2f"),
                            "lift": st.column_config.NumberColumn(format="%.1f")})

st.subheader("Network")
n_rules = st.slider("Rules in the network", 5, 80, 30, 5, key="r_net")
nodes, edges = explore.rule_graph(shown, rec.track_labels, max_rules=n_rules, seed=0)
if nodes.empty:
    st.info("No rule matches these filters.")
else:
    xs, ys = [], []
    for e in edges.itertuples():
        xs += [e.x0, e.x1, None]
        ys += [e.y0, e.y1, None]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line={"width": 1, "color": "#999"}, hoverinfo="skip",
                             showlegend=False))
    fig.add_trace(go.Scatter(x=nodes["x"], y=nodes["y"], mode="markers+text", text=nodes["name"].str.slice(0, 28),
                             textposition="top center", hovertext=nodes["name"], hoverinfo="text", showlegend=False,
                             marker={"size": 8 + 3 * nodes["degree"].clip(upper=8), "color": nodes["degree"],
                                     "colorscale": "Viridis"}))
    fig.update_layout(height=560, xaxis={"visible": False}, yaxis={"visible": False},
                      margin={"l": 10, "r": 10, "t": 10, "b": 10})
    st.plotly_chart(fig, key="rule_net")
    st.caption("Lines join the tracks of a rule (antecedent to consequent); bigger nodes take part in more rules.")
