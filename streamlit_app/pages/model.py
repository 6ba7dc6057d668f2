"""Model: the bundle's manifest and validation metrics, the two-tower's training curve, the benchmark table."""

import pandas as pd
import plotly.express as px
import streamlit as st

from modules import explore
from streamlit_app import common

rec = common.recommender()
m = rec.manifest
st.title("The model")

data = m.get("data", {})
c1, c2, c3, c4 = st.columns(4)
c1.metric("Training playlists", f"{data.get('playlists', 0):,}")
c2.metric("Tracks", f"{data.get('tracks', 0):,}")
c3.metric("Fusion", str(m.get("fusion", "—")))
c4.metric("Training time", f"{m.get('train_seconds', 0):.0f} s")
st.caption(f"Bundle `{rec.path}` · parts: {', '.join(m.get('parts', {}))} · trained on `{data.get('source')}` "
           f"(fingerprint {data.get('fingerprint')}) · features: {data.get('features')}")

st.subheader("Validation")
val = m.get("validation") or {}
if not val.get("per_category"):
    st.info("This bundle records no validation metrics.")
else:
    st.caption(f"On {val.get('playlists', '?')} held-out training playlists (challenge categories), before the "
               f"final fit. Chosen fusion: {val.get('chosen', '—')}.")
    rows = {"hybrid": val["per_category"]}
    if val.get("two_tower_per_category"):
        rows["two-tower alone"] = val["two_tower_per_category"]
    long = pd.DataFrame([{"model": name, "category": cat, **vals} for name, per in rows.items()
                         for cat, vals in per.items() if cat != "ALL_CUTS"])  # a summary over all cuts, not a category
    st.dataframe(long.loc[long["category"] == "ALL"].drop(columns="category"), hide_index=True)
    metric = st.selectbox("Metric per category", ["ndcg", "r_precision", "r_precision_artist", "recall", "clicks"],
                          key="val_metric")
    st.plotly_chart(px.bar(long.loc[long["category"] != "ALL"], x="category", y=metric, color="model",
                           barmode="group", height=360), key="val_chart")

st.subheader("Two-tower training curve")
curve = explore.training_curve(rec.path)
if curve.empty:
    st.info("This bundle records no training curve for the two-tower (no two_tower/training_curve.json).")
else:
    cols = [c for c in curve.columns if c != "epoch"]
    picked = st.multiselect("Series", cols, default=[c for c in ("loss", "validation.ndcg") if c in cols],
                            key="curve_cols")
    left, right = st.columns(2)
    for i, c in enumerate(picked):
        (left if i % 2 == 0 else right).plotly_chart(px.line(curve, x="epoch", y=c, markers=True, height=280),
                                                     key=f"curve-{c}")
    with st.expander("Per-epoch table"):
        st.dataframe(curve, hide_index=True)

with st.expander("Manifest (manifest.json)"):
    st.json(m, expanded=False)

st.subheader("Benchmarks")
root = common.benchmarks_path()
results = common.load_benchmarks(str(root))
if results.empty:
    st.info(f"No quality results under `{root}`. Make them (each method is fitted on the training split only and "
            "scored with `modules evaluate`):")
    st.code("python -m benchmarks.quality --playlists 3000 --per-category 30 --methods popularity,itemknn,als,"
            "two-tower,hybrid\n# or every row of docs/benchmarks.md: make bench-small", language="bash")
else:
    runs = sorted(results["run"].unique())
    sizes = results.groupby("run")["method"].nunique()
    quality = [r for r in runs if r.startswith("quality")] or runs
    most = max(sizes[r] for r in quality)  # the run with the most methods side by side; of equals the first by
    best = min(r for r in quality if sizes[r] == most)  # name (a seed-0 world before its replications)
    run = st.selectbox("Benchmark run", runs, index=runs.index(best), key="bench_run")
    table = explore.benchmark_table(results, run)
    st.dataframe(table, hide_index=True)
    sel = results.loc[(results["run"] == run) & (results["category"] != "ALL")]
    metric = st.selectbox("Metric per category", sorted(sel["metric"].unique()), key="bench_metric",
                          index=sorted(sel["metric"].unique()).index("ndcg") if "ndcg" in set(sel["metric"]) else 0)
    methods = st.multiselect("Methods", table["method"].tolist(), default=table["method"].tolist()[:5],
                             key="bench_methods")
    sel = sel.loc[(sel["metric"] == metric) & sel["method"].isin(methods)]
    st.plotly_chart(px.bar(sel, x="category", y="value", color="method", barmode="group", height=400,
                           labels={"value": metric}), key="bench_chart")
    st.caption(f"From `{root / run}` (written by benchmarks/quality.py).")
