"""Shown instead of the other pages when no bundle can be loaded: what is wrong and the command that fixes it."""

import streamlit as st

from streamlit_app import common

st.title("Train a model first")
st.write("The demo answers playlists from a trained model bundle, and none could be loaded:")
st.error(st.session_state.get("bundle_error") or f"No bundle at {common.bundle_path()}.")
st.write("Train one on the playlist world (builds it first if you have not yet):")
st.code(f"{common.WORLD_COMMAND}\n{common.TRAIN_COMMAND}", language="bash")
st.write("Then reload this page. To use a bundle elsewhere, start the app with `PLAYLIST_MODEL=DIR` in the "
         "environment or `python -m streamlit run streamlit_app/app.py -- --model DIR`.")
