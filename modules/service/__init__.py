"""The REST service over a model bundle: ``python -m modules serve --model BUNDLE_DIR`` (docs/serving.md).

Endpoints (OpenAPI docs at ``/docs``): ``POST /recommend``, ``GET /health``, ``GET /metadata``, and TensorFlow
Serving's ``POST /v1/models/<name>:predict`` and ``GET /v1/models/<name>`` (``routes``).

Bad input is always a 4xx with a message in ``error``, never a 500 (``http_errors``): a body that is not JSON
(400), wrong types or unknown fields (422), ``k`` or the seed count out of bounds (422), a body above
``max_body_bytes`` (413); on the ``/v1/`` routes TensorFlow Serving's shapes. Text must be valid Unicode, and a
request that makes a batch's computation fail fails alone (``MicroBatcher``).

Who may call (``auth``): with an API key every route but ``OPEN_PATHS`` needs ``Authorization: Bearer <key>``;
``serve`` refuses a non-loopback address without one. A connection that does not send a whole request within
``request_timeout`` seconds is closed (``server.request_deadline_protocol``).

Both model endpoints await their answers from a micro-batcher's worker threads (``batching``), so the event loop
stays free: ``:predict`` is one SavedModel call per playlist (``predictor``), so an answer does not depend on its
batch; ``/recommend`` one ``Recommender.recommend_columns_batch`` call per batch (one scan of the catalog). The
batches are computed by ``processes`` recommendation processes (``workers``; ``serve --workers``), or in this
process, ``concurrency`` at a time (default 1: on a CPU-bound model more parallel calls only contend for the same
cores and the GIL). Each process caps its OpenMP/BLAS pools at ``native_threads`` (``runtime``).

Files: ``app`` (``create_app``), ``routes``, ``schemas`` (request and response bodies), ``batching``,
``workers``, ``predictor``, ``auth``, ``http_errors``, ``runtime``, ``server`` (``serve``), ``config``
(defaults, ``ServiceError``).
"""

from modules.service.app import ServiceState, create_app, public_manifest
from modules.service.auth import BearerAuthMiddleware, is_loopback, read_api_key
from modules.service.batching import MicroBatcher
from modules.service.config import (
    API_KEY_ENV,
    DEFAULT_CONCURRENCY,
    DEFAULT_KEEP_ALIVE,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_K,
    DEFAULT_MAX_SEEDS,
    DEFAULT_MODEL_NAME,
    DEFAULT_NATIVE_THREADS,
    DEFAULT_REQUEST_TIMEOUT,
    DEFAULT_WORKERS,
    MIN_API_KEY_LENGTH,
    OPEN_PATHS,
    RECOMMEND_BATCH,
    ServiceError,
)
from modules.service.http_errors import BodyLimitMiddleware
from modules.service.predictor import SavedModelPredictor
from modules.service.runtime import freeze_loaded_heap, limit_native_threads
from modules.service.schemas import (
    Parts,
    PredictInstance,
    Prediction,
    PredictRequest,
    PredictResponse,
    Recommendation,
    RecommendRequest,
    RecommendResponse,
)
from modules.service.server import make_server, request_deadline_protocol, serve
from modules.service.workers import ProcessRecommender

__all__ = [
    "API_KEY_ENV", "DEFAULT_CONCURRENCY", "DEFAULT_KEEP_ALIVE", "DEFAULT_MAX_BODY_BYTES", "DEFAULT_MAX_K",
    "DEFAULT_MAX_SEEDS", "DEFAULT_MODEL_NAME", "DEFAULT_NATIVE_THREADS", "DEFAULT_REQUEST_TIMEOUT", "DEFAULT_WORKERS",
    "MIN_API_KEY_LENGTH", "OPEN_PATHS", "RECOMMEND_BATCH", "BearerAuthMiddleware", "BodyLimitMiddleware",
    "MicroBatcher", "Parts", "PredictInstance", "PredictRequest", "PredictResponse", "Prediction",
    "ProcessRecommender", "Recommendation", "RecommendRequest", "RecommendResponse", "SavedModelPredictor",
    "ServiceError", "ServiceState", "create_app", "freeze_loaded_heap", "is_loopback", "limit_native_threads",
    "make_server", "public_manifest", "read_api_key", "request_deadline_protocol", "serve",
]
