"""The service's endpoints, each a small function over the ``ServiceState`` that ``create_app`` built::

    POST /recommend                  {"seed_track_uris": [...], "title": "...", "k": 50}
                                     -> {"recommendations": [{"track_uri", "score", "parts", "explanation", ...}]}
    GET  /health                     readiness (200, or 503 when a part that answers is not running); no paths
    GET  /metadata                   the bundle manifest, paths reduced to their last part
    POST /v1/models/<name>:predict   TensorFlow-Serving REST shape, answered by the exported two-tower SavedModel
    GET  /v1/models/<name>           TensorFlow-Serving model status

FastAPI is imported inside the functions (``serve --help`` imports this package), and this module does not use
postponed annotations: FastAPI reads the route functions' annotations, which name those local imports.
"""

import time
from typing import TYPE_CHECKING, Any

import orjson

from modules.service.schemas import PredictRequest, PredictResponse, RecommendRequest, RecommendResponse, finite_list

if TYPE_CHECKING:
    from modules.service.app import ServiceState


def add_routes(app, state: "ServiceState") -> None:
    """Register every endpoint of the service on ``app``."""
    add_status_routes(app, state)
    add_recommend_route(app, state)
    add_predict_routes(app, state)


def add_status_routes(app, state: "ServiceState") -> None:
    """``/health`` (readiness, for load balancers: open without the API key) and ``/metadata``."""
    from fastapi.responses import JSONResponse, Response

    @app.get("/health", summary="readiness: 200 when every part that answers requests is running, else 503",
             response_model=None,
             responses={503: {"description": "a recommendation process or a batcher thread is not running"}})
    def health() -> Response:
        ok, body = state.health()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metadata", summary="the bundle manifest (data, configuration, validation metrics, versions), "
             "without file-system paths")
    def metadata() -> dict[str, Any]:
        return state.public_manifest


def add_recommend_route(app, state: "ServiceState") -> None:
    """``POST /recommend``: the full hybrid, batched with the requests that queue meanwhile."""
    from concurrent.futures.process import BrokenProcessPool

    from fastapi import HTTPException
    from fastapi.responses import Response

    @app.post("/recommend", response_model=RecommendResponse,
              summary="the k tracks that best continue a playlist, with score parts and explanations")
    async def recommend(req: RecommendRequest) -> Response:
        if req.k < 1 or req.k > state.max_k:
            raise HTTPException(422, f"k must be between 1 and {state.max_k} (got {req.k})")
        if len(req.seed_track_uris) > state.max_seeds:
            raise HTTPException(422, f"at most {state.max_seeds} seed tracks per request (got "
                                f"{len(req.seed_track_uris)})")
        t0 = time.perf_counter()
        try:
            (c,) = await state.recommend_batched([{"seed_track_uris": req.seed_track_uris, "title": req.title,
                                                   "k": req.k, "weights": req.weights, "mode": req.mode,
                                                   "explain": req.k if req.explain else False}])
        except BrokenProcessPool:
            raise HTTPException(503, "a recommendation process stopped while answering; new ones are starting, "
                                "retry in a minute") from None
        if isinstance(c, Exception):  # e.g. an unknown feature in weights
            raise HTTPException(422, str(c))
        # the rows are plain str/float/None already: orjson writes them without FastAPI re-validating and
        # re-encoding every field (response_model still documents the shape)
        return Response(orjson.dumps({"recommendations": recommendation_rows(c),
                                      "took_ms": round(1000 * (time.perf_counter() - t0), 2)}),
                        media_type="application/json")


def recommendation_rows(c: dict) -> list[dict[str, Any]]:
    """``Recommender.recommend_columns``'s answer as the response's rows (non-finite scores as JSON null, or 0
    for the score itself)."""
    return [{"rank": rank, "track_uri": uri, "track_name": name, "artist_name": artist, "score": score,
             "parts": {"retrieval": retrieval, "rules": rules, "content": content}, "explanation": why}
            for rank, uri, name, artist, score, retrieval, rules, content, why in zip(
                c["rank"].tolist(), c["track_uri"].tolist(), c["track_name"].tolist(), c["artist_name"].tolist(),
                finite_list(c["score"], 0.0), finite_list(c["retrieval"]), finite_list(c["rules"]),
                finite_list(c["content"]), c["explanation"], strict=True)]


def add_predict_routes(app, state: "ServiceState") -> None:
    """TensorFlow Serving's REST API over the two-tower SavedModel: ``:predict`` and the model status."""
    from fastapi import HTTPException
    from fastapi.responses import Response

    def check_name(name: str) -> None:
        if name != state.model_name:
            raise HTTPException(404, f"Servable not found for request: Latest({name}); this server serves "
                                f"model {state.model_name!r}")

    @app.get("/v1/models/{name}", summary="TensorFlow-Serving model status")
    def model_status(name: str) -> dict[str, Any]:
        check_name(name)
        return {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}

    @app.post("/v1/models/{name}:predict", response_model=PredictResponse,
              summary="TensorFlow-Serving predict over the two-tower SavedModel (serving_default)")
    async def predict(name: str, req: PredictRequest) -> Response:
        check_name(name)
        if req.signature_name != "serving_default":
            raise HTTPException(400, f"signature_name must be 'serving_default' (got {req.signature_name!r})")
        max_seeds = state.max_seeds
        if len(req.instances) > max_seeds:
            raise HTTPException(400, f"at most {max_seeds} instances per request (got {len(req.instances)})")
        too_many = [i for i, x in enumerate(req.instances) if len(x.seed_track_uris) > max_seeds]
        if too_many:
            raise HTTPException(400, f"instances {too_many[:5]}: at most {max_seeds} seed tracks each")
        preds = await state.predict_batched([(x.seed_track_uris, x.title) for x in req.instances])
        # 500 URIs and 500 scores per row, already plain str/float: orjson writes them directly, without
        # re-validating ~30 kB per request on the event loop (response_model still documents the shape)
        return Response(orjson.dumps({"predictions": preds}), media_type="application/json")
