"""Shown instead of the other pages when no bundle can be loaded: what is wrong, and either the training under
way (``modules.training_job``, started here when ``make demo`` asks for it) or the command that fixes it."""

import os

import streamlit as st

from modules import training_job
from streamlit_app import common

out = common.bundle_path()
source = common.training_source()
job = training_job.status(out)
if source is not None and job.state == "none" and os.environ.get("PLAYLIST_TRAIN_AUTOSTART") == "1":
    job = training_job.start(training_job.train_command(source, out, common.training_seed()), out)


def _minutes(seconds: float | None) -> str:
    return "just now" if not seconds or seconds < 60 else f"{seconds / 60:.0f} min ago"


@st.fragment(run_every=3)
def _progress() -> None:
    """The running job's latest log lines, re-read every 3 s; the whole app reruns once the bundle exists."""
    now = training_job.status(out)
    if now.state != "running":
        st.rerun(scope="app")
    st.info(f"Training the model into `{out}` (started {_minutes(now.elapsed)}; about 10 minutes on 2 cores). "
            "This page opens the app by itself when the bundle is written.")
    st.code("\n".join(now.tail) or "starting…", language="text")
    st.caption(f"Full log: `{now.log_path}`. Stopping the app does not stop the training: start the app again "
               "and it shows this page until the training ends.")


if job.state == "running":
    st.title("Training the model")
    st.write(f"The demo answers playlists from a model bundle trained on `{source or 'your playlists'}`: "
             "the two-tower model, the association rules, the content model and the fusion that blends them.")
    _progress()
else:  # no bundle, a failed training, or a bundle that exists and does not load (the error says why)
    st.title("Train a model first")
    st.write("The demo answers playlists from a trained model bundle, and none could be loaded:")
    st.error(st.session_state.get("bundle_error") or f"No bundle at {out}.")
    if job.state == "failed":
        st.error("The training started from here ended without writing the bundle. Its last lines:")
        st.code("\n".join(job.tail) or "(empty log)", language="text")
    if source is not None:
        if st.button(f"Train it now on `{source}` (about 10 minutes)", type="primary"):
            training_job.start(training_job.train_command(source, out, common.training_seed()), out)
            st.rerun()
        st.write("Or in a terminal:")
    else:
        st.write("Train one on the playlist world (builds it first if you have not yet):")
    st.code(f"{common.WORLD_COMMAND}\n{common.TRAIN_COMMAND}", language="bash")
    st.write("Then reload this page. To use a bundle elsewhere, start the app with `PLAYLIST_MODEL=DIR` in the "
             "environment or `python -m streamlit run streamlit_app/app.py -- --model DIR`.")
