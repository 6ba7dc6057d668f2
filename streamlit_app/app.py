"""The demo: ``python -m streamlit run streamlit_app/app.py [-- --model models/world]``, from the repository root.

``python -m`` puts the working directory on the import path, so ``streamlit_app.*`` imports; a bare
``streamlit run`` would only add ``streamlit_app/`` itself. ``modules`` comes from the installed package.

Builds the navigation over the pages in ``pages/``; when the bundle cannot be loaded, the only page says how to
train one. Every page is a thin view over ``modules`` (``modules.recommender``, ``modules.explore``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import streamlit as st  # noqa: E402

from streamlit_app import common  # noqa: E402

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
st.set_page_config(page_title="Playlist continuation", page_icon="🎧", layout="wide")

rec, error = common.try_recommender()
if rec is None:
    st.session_state["bundle_error"] = error
    pages = [st.Page(APP_DIR / "pages" / "setup.py", title="Get started", icon="🛠️", default=True)]
else:
    pages = [
        st.Page(APP_DIR / "pages" / "recommend.py", title="Recommend", icon="🎧", default=True),
        st.Page(APP_DIR / "pages" / "explore.py", title="Explore", icon="🗺️"),
        st.Page(APP_DIR / "pages" / "rules.py", title="Rules", icon="🔗"),
        st.Page(APP_DIR / "pages" / "model.py", title="Model", icon="📈"),
    ]
    with st.sidebar:
        data = rec.manifest.get("data", {})
        st.caption(f"Bundle `{rec.path}`: {data.get('playlists', '?')} playlists, {data.get('tracks', '?')} "
                   "tracks.")
        art = common.features_path()
        st.caption(f"Album art from `{art}`." if art.is_file() else
                   "Covers are placeholders: no song feature store with album art. With Spotify credentials, "
                   "`python -m modules features import` then `features fetch --top 500` caches real covers.")
st.navigation(pages).run()
