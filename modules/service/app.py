"""``create_app``: the FastAPI app over a bundle, built from small steps (check the settings, open the model,
start the batchers, warm up, add middleware, error handlers and routes)."""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modules.bundle import Bundle
from modules.service.auth import BearerAuthMiddleware, document_bearer
from modules.service.batching import MicroBatcher
from modules.service.config import (
    DEFAULT_CONCURRENCY,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_K,
    DEFAULT_MAX_SEEDS,
    DEFAULT_MODEL_NAME,
    DEFAULT_NATIVE_THREADS,
    MIN_API_KEY_LENGTH,
    RECOMMEND_BATCH,
    UNSET,
    ServiceError,
    check_positive_ints,
    renamed,
)
from modules.service.http_errors import BodyLimitMiddleware, install_error_handlers
from modules.service.predictor import SavedModelPredictor
from modules.service.routes import add_routes
from modules.service.workers import ProcessRecommender, warm_up

log = logging.getLogger(__name__)

DESCRIPTION = ("Playlist continuation: give seed tracks and/or a title, get the tracks that continue the playlist, "
               "with score parts and explanations. `/v1/models/{name}:predict` speaks TensorFlow Serving's REST "
               "format over the exported two-tower SavedModel.")


@dataclass
class ServiceState:
    """Everything the routes answer from: the model (here or in processes), its batchers and the limits."""

    rec: Any  # the Recommender, or None when recommendation processes hold the model
    manifest: dict
    n_tracks: int
    predictor: SavedModelPredictor
    predict_batched: MicroBatcher
    recommend_batched: MicroBatcher
    workers: ProcessRecommender | None
    processes: int
    max_k: int
    max_seeds: int
    max_body_bytes: int
    model_name: str

    def __post_init__(self) -> None:
        self.public_manifest = public_manifest(self.manifest)

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether every part that answers requests is running, and the ``/health`` body that says so."""
        alive = self.workers.alive() if self.workers is not None else 0
        batchers = self.recommend_batched.alive() and self.predict_batched.alive()
        loaded = self.rec is not None if self.workers is None else alive == self.processes
        ok = batchers and loaded
        return ok, {"status": "ok" if ok else "unavailable", "bundle_loaded": loaded, "batchers_alive": batchers,
                    "recommendation_processes": self.processes, "recommendation_processes_alive": alive,
                    "fingerprint": self.manifest.get("data", {}).get("fingerprint"), "tracks": int(self.n_tracks),
                    "parts": sorted(self.manifest.get("parts", {})), "model_name": self.model_name,
                    "limits": {"max_k": self.max_k, "max_seeds": self.max_seeds,
                               "max_body_bytes": self.max_body_bytes}}


def create_app(model, *, max_k: int = DEFAULT_MAX_K, max_seeds: int = DEFAULT_MAX_SEEDS,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, model_name: str = DEFAULT_MODEL_NAME,
               concurrency: int = DEFAULT_CONCURRENCY, saved_model: str | Path | None = None, warmup: bool = True,
               processes: int = 0, native_threads: int | None = DEFAULT_NATIVE_THREADS, api_key: str | None = None,
               threads: int | None = UNSET):
    """A FastAPI app answering from ``model`` (a bundle path or a loaded ``Recommender``).

    ``saved_model`` defaults to the bundle's ``two_tower/saved_model``; the ``:predict`` endpoint uses it.
    ``processes`` > 0 computes ``/recommend`` in that many worker processes (``ProcessRecommender``, each with
    ``native_threads`` OpenMP/BLAS threads; ``threads`` is its deprecated name) instead of this one; ``concurrency``
    is then ignored (one batch per process).
    ``api_key``: every route but ``OPEN_PATHS`` needs ``Authorization: Bearer <api_key>`` (``None``: no key).
    """
    native_threads = renamed(native_threads, threads, old="threads", new="native_threads", where="create_app")
    _check_settings(max_k=max_k, max_seeds=max_seeds, max_body_bytes=max_body_bytes, concurrency=concurrency,
                    processes=processes, api_key=api_key)
    rec, bundle, manifest = _open_model(model, processes)
    predictor = SavedModelPredictor(saved_model or bundle.saved_model)
    workers = ProcessRecommender(bundle.path, processes, native_threads) if processes else None
    state = ServiceState(
        rec=rec, manifest=manifest, n_tracks=len(rec.tracks) if rec is not None else bundle.count_tracks(),
        predictor=predictor, predict_batched=_predict_batcher(predictor),
        recommend_batched=_recommend_batcher(rec, workers, processes or concurrency), workers=workers,
        processes=processes, max_k=max_k, max_seeds=max_seeds, max_body_bytes=max_body_bytes, model_name=model_name)
    if warmup:
        _warm_up(state, bundle)
    return app_for_state(state, max_body_bytes=max_body_bytes, api_key=api_key)


def app_for_state(state, *, max_body_bytes: int, api_key: str | None):
    """The whole app (middleware, error handlers, routes) around a ``ServiceState``, or any object with its
    fields: ``create_app`` after loading, and a benchmark measuring the HTTP layer with answers computed before."""
    app = _fastapi_app(state, max_body_bytes, api_key)
    install_error_handlers(app)
    add_routes(app, state)
    return app


def _check_settings(*, processes, api_key, **positive) -> None:
    """``ServiceError`` for a setting out of range, before anything is loaded."""
    check_positive_ints(**positive)
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 0:
        raise ServiceError(f"processes must be an integer >= 0 (got {processes!r}).")
    if api_key is not None and len(api_key) < MIN_API_KEY_LENGTH:
        raise ServiceError(f"api_key must be at least {MIN_API_KEY_LENGTH} characters")


def _open_model(model, processes: int):
    """``(recommender or None, bundle, manifest)`` of ``model`` (a ``Recommender`` or a bundle path).

    With recommendation processes this process needs only the manifest and the SavedModel: not loading the hybrid
    here saves a copy of the bundle (~1.9 GB of the demo bundle's ~2 GB per process)."""
    from modules.recommender import Recommender

    if isinstance(model, Recommender):
        return model, Bundle(model.path), model.manifest
    bundle = Bundle(model)
    rec = None if processes else Recommender.load(bundle.path)
    return rec, bundle, rec.manifest if rec is not None else bundle.check()


def _predict_batcher(predictor: SavedModelPredictor) -> MicroBatcher:
    # one SavedModel call per playlist: a batch pads every playlist's seeds to the longest and computes them
    # together, which moves scores in the last bits, so an answer would depend on who else is asking
    return MicroBatcher(lambda rows: [predictor.predict([seeds], [title])[0] for seeds, title in rows],
                        name="predict-batcher")


def _recommend_batcher(rec, workers: ProcessRecommender | None, n_workers: int) -> MicroBatcher:
    """``/recommend``'s batcher: ``n_workers`` threads feeding the recommendation processes, or computing here."""
    from concurrent.futures.process import BrokenProcessPool

    return MicroBatcher(workers or rec.recommend_columns_batch, max_rows=RECOMMEND_BATCH, name="recommend-batcher",
                        workers=n_workers, whole_batch_errors=(BrokenProcessPool,))


def _warm_up(state: ServiceState, bundle: Bundle) -> None:
    """Trace the TensorFlow functions before the first request (the recommendation processes warm themselves up)."""
    if state.workers is None:
        warm_up(state.rec, min(10, state.max_k))
    state.predictor.predict([bundle.first_track_uris(2)], ["warm up"])


def _fastapi_app(state: ServiceState, max_body_bytes: int, api_key: str | None):
    """The FastAPI app with its lifespan (the processes end with it), state and middleware."""
    from fastapi import FastAPI

    from modules import __version__

    @asynccontextmanager
    async def lifespan(_app):
        yield
        if state.workers is not None:  # the worker processes go with the server
            state.workers.close()

    app = FastAPI(title="playlist-engine", version=__version__, lifespan=lifespan, description=DESCRIPTION)
    app.state.recommender = state.rec  # None when recommendation processes hold the model
    app.state.predictor = state.predictor
    app.state.workers = state.workers
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    if api_key is not None:  # added last, so it runs first: no key, nothing read
        app.add_middleware(BearerAuthMiddleware, api_key=api_key)
        document_bearer(app)
    return app


def public_manifest(manifest: dict) -> dict:
    """The manifest without this machine's paths: the training data and feature sources (``data.source``,
    ``data.features``, and any other absolute path) reduced to their last component."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items()}
        if isinstance(value, list):
            return [strip(v) for v in value]
        if isinstance(value, str) and (os.path.isabs(value) or value.startswith("~")):
            return Path(value).name
        return value

    out = strip(manifest)
    data = out.get("data")
    if isinstance(data, dict):
        for key in ("source", "features"):
            if isinstance(data.get(key), str) and data[key] != "shipped catalog":
                data[key] = Path(data[key]).name
    return out
