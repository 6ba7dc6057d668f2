"""The REST service over a model bundle: ``python -m modules serve --model BUNDLE_DIR``.

Endpoints (OpenAPI docs at ``/docs``)::

    POST /recommend                  {"seed_track_uris": [...], "title": "...", "k": 50}
                                     -> {"recommendations": [{"track_uri", "score", "parts", "explanation", ...}]}
    GET  /health                     readiness (200, or 503 when a part that answers is not running); no paths
    GET  /metadata                   the bundle manifest, paths reduced to their last part
    POST /v1/models/<name>:predict   TensorFlow-Serving REST shape, answered by the exported two-tower SavedModel
    GET  /v1/models/<name>           TensorFlow-Serving model status

Bad input is always a 4xx with a message in ``error``, never a 500: a body that is not JSON (400), wrong types
or unknown fields (422), ``k`` or the seed count out of bounds (422), a body above ``max_body_bytes`` (413);
on the ``/v1/`` routes TensorFlow Serving's shapes: 400 for any bad request, 404 for another model name. Text
must be valid Unicode (JSON's lone ``\ud800`` escapes are refused with a 422 naming the field), and a request
that makes a batch's computation fail fails alone (``MicroBatcher``).

Who may call: with an API key (``create_app(api_key=...)``, ``serve --api-key-file``) every route but
``OPEN_PATHS`` needs ``Authorization: Bearer <key>`` (``BearerAuthMiddleware``); ``serve`` refuses a non-loopback
address without one. A connection that does not send a whole request within ``request_timeout`` seconds is
closed (``request_deadline_protocol``). See docs/serving.md, "Security".

Both model endpoints await their answers from a micro-batcher's worker thread (``MicroBatcher``), so the event
loop stays free: ``:predict`` requests are answered in one worker thread, a SavedModel call per playlist so that
an answer does not depend on its batch; ``/recommend`` requests by one ``Recommender.recommend_columns_batch``
call (one scan of the catalog for all of them).
``Recommender`` is read-only over numpy arrays and TensorFlow functions, but the two-tower builds its query
``tf.function`` lazily on first use; the app warms it up before serving. ``/recommend`` batches are computed by
``processes`` worker processes (``ProcessRecommender``; ``serve --workers``), or in this process, ``concurrency``
at a time (default 1: on a CPU-bound model more parallel calls only contend for the same cores and the GIL); the
requests that arrive meanwhile queue for the next batch.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import logging
import math
import os
import threading
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr

from modules.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_MAX_K = 500
DEFAULT_MAX_SEEDS = 500
DEFAULT_MAX_BODY_BYTES = 1_000_000
DEFAULT_MODEL_NAME = "two_tower"
DEFAULT_KEEP_ALIVE = 30  # seconds an idle keep-alive connection stays open between requests
DEFAULT_REQUEST_TIMEOUT = 10  # seconds a client has to send a whole request, from its first byte or from connecting
API_KEY_ENV = "PLAYLIST_API_KEY"  # the API key, when no --api-key-file is given
MIN_API_KEY_LENGTH = 16
# what a client may read without the API key: liveness for load balancers, and the API's own description
OPEN_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
# /recommend batches at once in one process: 1 measured faster than 2 on 2 cores (the GIL serializes the rest)
DEFAULT_CONCURRENCY = 1
# recommendation processes: one per core, at most 4 (each holds a copy of the bundle)
DEFAULT_WORKERS = max(1, min(os.cpu_count() or 1, 4))
RECOMMEND_BATCH = 32  # /recommend requests per batch (one catalog scan; memory: 32 x tracks floats)


class ServiceError(UserError, ValueError):
    """A service that cannot start: no bundle, no SavedModel, bad limits."""


# -- request and response models (they are the OpenAPI schema) ----------------------------------------------
def _valid_unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # JSON allows "\ud800"; UTF-8, TensorFlow and the response writers do not
        from modules.recommender import lone_surrogate  # (not at the top: `serve --help` imports this module)

        raise ValueError(f"not valid Unicode: {lone_surrogate(value)} (JSON's \\ud800-\\udfff escapes must come "
                         "in high-low pairs)") from None
    return value


Text = Annotated[StrictStr, AfterValidator(_valid_unicode)]  # a JSON string that is valid Unicode


class RecommendRequest(BaseModel):
    """One playlist to continue: its tracks (any number, may be empty) and/or its title."""

    model_config = ConfigDict(extra="forbid")

    seed_track_uris: list[Text] = Field(default_factory=list, description="the playlist's track URIs")
    title: Text | None = Field(None, description="the playlist title")
    k: StrictInt = Field(50, description="number of tracks to return (1 … the server's --max-k)")
    weights: dict[Text, float] | None = Field(
        None, description='emphasis on audio features, e.g. {"energy": 2.0} (see Recommender.recommend)')
    mode: Literal["hybrid", "collaborative"] = Field("hybrid", description="collaborative: two-tower order only")
    explain: bool = Field(True, description="write explanations for the returned tracks")


class Parts(BaseModel):
    retrieval: float | None = Field(None, description="two-tower score")
    rules: float | None = Field(None, description="association-rule score")
    content: float | None = Field(None, description="content similarity (sound and tags)")


class Recommendation(BaseModel):
    rank: int
    track_uri: str
    track_name: str
    artist_name: str
    score: float
    parts: Parts
    explanation: str


class RecommendResponse(BaseModel):
    recommendations: list[Recommendation]
    took_ms: float


class PredictInstance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed_track_uris: list[Text] = Field(default_factory=list)
    title: Text = ""


class PredictRequest(BaseModel):
    """TensorFlow-Serving "row" format: one object per playlist with the signature's named inputs."""

    model_config = ConfigDict(extra="forbid")

    signature_name: Text = "serving_default"
    instances: Annotated[list[PredictInstance], Field(min_length=1)]


class Prediction(BaseModel):
    track_uris: list[str]
    scores: list[float]


class PredictResponse(BaseModel):
    predictions: list[Prediction]


def _finite_list(values, missing: float | None = None) -> list:
    """Floats of an array as a list, ``missing`` where not finite (JSON has no NaN)."""
    a = np.asarray(values, np.float64)
    out = a.tolist()
    if not np.isfinite(a).all():
        for i in np.flatnonzero(~np.isfinite(a)).tolist():
            out[i] = missing
    return out


class SavedModelPredictor:
    """The bundle's exported two-tower SavedModel, called exactly as TensorFlow Serving would call it."""

    def __init__(self, path: str | Path):
        import tensorflow as tf

        path = Path(path)
        if not (path / "saved_model.pb").exists():
            raise ServiceError(f"no SavedModel at {path} (expected saved_model.pb); retrain the bundle with "
                               "python -m modules train")
        self.path = path
        self._tf = tf
        self.model = tf.saved_model.load(str(path))
        self.signature = self.model.signatures["serving_default"]

    def predict(self, seed_lists: list[list[str]], titles: list[str]) -> list[dict[str, list]]:
        """One row per playlist: ``{"track_uris": [...], "scores": [...]}`` (seeds padded with "")."""
        tf = self._tf
        width = max([len(s) for s in seed_lists] + [1])
        seeds = [list(s) + [""] * (width - len(s)) for s in seed_lists]
        out = self.signature(seed_track_uris=tf.constant(seeds, dtype=tf.string),
                             title=tf.constant(titles, dtype=tf.string))
        uris, scores = out["track_uris"].numpy(), out["scores"].numpy()
        return [{"track_uris": [u.decode() for u in uris[i]], "scores": [float(s) for s in scores[i]]}
                for i in range(len(seed_lists))]


class MicroBatcher:
    """Answers concurrent calls together, in one worker thread: ``fn(rows)`` maps a list of rows (playlists) to one
    result per row. While one batch runs, the calls that arrive queue up, and the next batch takes them all (up to
    ``max_rows`` rows) in arrival order.

    With ``threads`` > 1 that many batches run at once: a thread that becomes free takes its share of what has
    queued (the queue divided by the number of threads, rounded up), so the others find work too.
    The work behind both endpoints costs mostly per call, not per row (a SavedModel call; a scan of the whole
    catalog's factors), so under load one call serves many requests; an idle server adds no wait (a lone request
    is a batch of one). Requests wait as asyncio futures on the event loop, not as threads: 32 waiting threads
    fighting for the GIL starve the event loop and stretch the latency tail.


    A batch whose call raises is answered again in halves, down to single calls, so a request that makes ``fn``
    fail gets its own error and the others their answers (a failing batch of 32 costs about 10 more calls, not
    32); errors in ``whole_batch_errors`` (a recommendation process that died) fail the whole batch at once.
    """

    def __init__(self, fn, max_rows: int = 256, name: str = "batcher", threads: int = 1,
                 whole_batch_errors: tuple[type[BaseException], ...] = ()):
        import queue

        self.fn, self.max_rows, self.whole_batch_errors = fn, max_rows, tuple(whole_batch_errors)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True) for i in range(threads)]
        for t in self._threads:
            t.start()

    async def __call__(self, rows: list) -> list:
        import asyncio

        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.put((list(rows), loop, future))
        return await future

    def call(self, rows: list) -> list:
        """The same from a thread without an event loop (tests, scripts)."""
        import asyncio

        return asyncio.run(self(rows))

    def _work(self) -> None:
        import queue

        pending = None
        while True:
            batch = [pending or self._queue.get()]
            # a fair share of what is queued, so the other threads (processes) get work too: with one cap for all,
            # the first free thread took all 32 waiting requests while the second idled
            share = -(-(len(batch[0][0]) + self._queue.qsize()) // len(self._threads))
            pending, n = None, len(batch[0][0])
            while n < share:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if n + len(job[0]) > self.max_rows:
                    pending = job  # starts the next batch
                    break
                batch.append(job)
                n += len(job[0])
            try:
                self._run(batch)
            except Exception:  # e.g. a caller's event loop closed meanwhile: the thread goes on serving the others
                log.exception("%s could not answer a batch", threading.current_thread().name)

    def alive(self) -> bool:
        """Whether every worker thread is running (a dead one would leave its share of requests waiting)."""
        return all(t.is_alive() for t in self._threads)

    def _run(self, batch: list) -> None:
        """Answer each job (``(rows, loop, future)``) of ``batch``: one call for all; if it raises, each half again."""
        try:
            out = self.fn([row for rows, _loop, _future in batch for row in rows])
        except Exception as err:
            if len(batch) > 1 and not isinstance(err, self.whole_batch_errors):
                log.warning("a batch of %d requests failed (%s); answering it in halves so only the request that "
                            "fails gets the error", len(batch), type(err).__name__)
                half = len(batch) // 2
                self._run(batch[:half])
                self._run(batch[half:])
                return
            for _rows, loop, future in batch:
                loop.call_soon_threadsafe(_resolve, future, None, err)
            return
        at = 0
        for rows, loop, future in batch:
            loop.call_soon_threadsafe(_resolve, future, out[at:at + len(rows)], None)
            at += len(rows)


def _resolve(future, result, error) -> None:
    if future.done():  # the client went away
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class BodyLimitMiddleware:
    """Refuse request bodies above ``max_bytes`` with 413, by Content-Length or while the body streams in."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = int(max_bytes)

    async def __call__(self, scope, receive, send):
        from starlette.exceptions import HTTPException

        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        too_big = _json_error(413, f"request body larger than the limit of {self.max_bytes} bytes")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            try:
                if int(length) > self.max_bytes:
                    return await too_big(scope, receive, send)
            except ValueError:
                return await _json_error(400, "invalid Content-Length header")(scope, receive, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:  # a chunked body: FastAPI passes this through to the 413 response
                    raise HTTPException(413, f"request body larger than the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)


class BearerAuthMiddleware:
    """Refuse requests without ``Authorization: Bearer <api_key>`` with 401, except on ``open_paths``.

    The key is compared as SHA-256 digests with ``hmac.compare_digest``: the time taken tells a caller nothing
    about how much of a guess was right, not even its length. Runs before the body is read, so a caller without
    the key cannot make the server parse anything. The key is never logged (uvicorn's access log writes the
    request line, not the headers).
    """

    def __init__(self, app, api_key: str, open_paths=OPEN_PATHS):
        self.app = app
        self._digest = hashlib.sha256(api_key.encode()).digest()
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            return await self.app(scope, receive, send)
        given = None
        for name, value in scope.get("headers") or []:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                given = token.strip() if scheme.lower() == b"bearer" else b""
                break
        if given is not None and hmac.compare_digest(hashlib.sha256(given).digest(), self._digest):
            return await self.app(scope, receive, send)
        message = ("this server needs an API key: send the header 'Authorization: Bearer <key>'" if given is None
                   else "wrong API key (expected the header 'Authorization: Bearer <key>')")
        response = _json_error(401, message)
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)


def read_api_key(path: str | Path | None = None, environ: dict | None = None) -> str | None:
    """The service's API key: the contents of ``path`` (surrounding whitespace removed), else the environment
    variable ``PLAYLIST_API_KEY``, else ``None`` (no authentication). Raises ``ServiceError`` for a key that is
    missing, too short or not printable ASCII, without ever writing the key itself."""
    if path is not None:
        path = Path(path)
        try:
            key = path.read_bytes().decode("latin-1").strip()  # any bytes; a non-ASCII key is refused below
        except FileNotFoundError:
            raise ServiceError(f"--api-key-file {path} does not exist; write a key into it, e.g. python -c "
                               f"'import secrets; print(secrets.token_urlsafe(32))' > {path}") from None
        except OSError as err:
            raise ServiceError(f"--api-key-file {path} cannot be read: {err.strerror}") from None
        source = f"--api-key-file {path}"
        if os.name == "posix" and path.stat().st_mode & 0o077:
            log.warning("%s can be read by other users of this machine; restrict it with chmod 600", path)
    else:
        key = (os.environ if environ is None else environ).get(API_KEY_ENV, "").strip()
        if not key:  # unset or empty
            return None
        source = f"${API_KEY_ENV}"
    if len(key) < MIN_API_KEY_LENGTH or not all(33 <= ord(c) < 127 for c in key):
        raise ServiceError(f"the API key in {source} must be at least {MIN_API_KEY_LENGTH} printable ASCII "
                           "characters without spaces; make one with: python -c 'import secrets; "
                           "print(secrets.token_urlsafe(32))'")
    return key


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` answers only this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def _json_error(status: int, message: str):
    from fastapi.responses import JSONResponse

    return JSONResponse({"detail": message, "error": message}, status_code=status)


def _clean(value):
    """``value`` writable as JSON: a string's lone surrogates as visible ``\\ud800`` text (UTF-8 has no
    encoding for them), a non-finite number as its name (JSON has no NaN or Infinity)."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _error_detail(errors) -> list[dict[str, Any]]:
    """Pydantic errors as FastAPI's ``detail`` list, safe to write whatever the client sent: each error's type,
    location and message, and its ``input`` only when that is one JSON scalar (a value nested 900 deep, or one
    with lone surrogates, once made the error response itself fail with a 500)."""
    out = []
    for e in errors:
        item = {"type": e.get("type"), "loc": [_clean(x) for x in e.get("loc", ())],
                "msg": _clean(str(e.get("msg", "invalid")))}
        value = e.get("input")
        if value is None or isinstance(value, (str, bool, int, float)):
            item["input"] = _clean(value)
        out.append(item)
    return out


def _summarize(errors) -> str:
    """Pydantic errors as one readable line: ``body.k: Input should be a valid integer``."""
    parts = []
    for e in errors:
        if e.get("type") == "json_invalid":
            pos = e.get("loc", ("", "?"))[-1]
            parts.append(f"invalid JSON at character {pos}: {(e.get('ctx') or {}).get('error', 'decode error')}")
            continue
        loc = ".".join(str(_clean(x)) for x in e.get("loc", ()))
        msg = _clean(str(e.get("msg", "invalid")))
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


_WORKER_RECOMMENDER = None


def _warm_up(rec, k: int = 10) -> None:
    """One recommendation with explanations, so the two-tower's lazily traced TensorFlow function exists before
    the first (possibly concurrent) request."""
    rec.recommend_columns(rec.tracks["track_uri"].iloc[:2].tolist(), "warm up", k=k, explain=True)


def _worker_start(bundle: str, threads: int | None, loaded) -> None:
    """Initializer of a recommendation process: load the bundle, warm it up, freeze it, say so."""
    global _WORKER_RECOMMENDER
    import signal

    from modules.recommender import Recommender

    # Ctrl-C reaches the whole process group; the HTTP process stops these when it shuts down (without this each
    # printed a KeyboardInterrupt traceback)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_native_threads(threads)
    rec = Recommender.load(bundle)
    _warm_up(rec)
    _WORKER_RECOMMENDER = rec
    freeze_loaded_heap()
    loaded.send(os.getpid())


def _worker_recommend(requests: list) -> list:
    return _WORKER_RECOMMENDER.recommend_columns_batch(requests)


def _worker_pid() -> int:
    return os.getpid()


class ProcessRecommender:
    """``Recommender.recommend_columns_batch`` answered by ``processes`` worker processes, each with its own copy
    of the bundle; a batch goes to whichever process is free (one queue, so none idles while another has work).

    The processes are started (spawned: TensorFlow does not survive a fork) and loaded before the constructor
    returns. If one dies (e.g. killed for memory), the batch in flight fails and a new pool starts for the next."""

    def __init__(self, bundle: str | Path, processes: int, threads: int | None = 1, timeout: float = 600):
        self.bundle, self.processes, self.threads, self.timeout = str(bundle), processes, threads, timeout
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        ctx = multiprocessing.get_context("spawn")
        ready, loaded = ctx.Pipe(duplex=False)  # each process sends its pid once loaded (a pipe: no semaphores)
        pool = ProcessPoolExecutor(self.processes, mp_context=ctx, initializer=_worker_start,
                                   initargs=(self.bundle, self.threads, loaded))
        jobs = [pool.submit(_worker_pid) for _ in range(self.processes)]  # spawns the processes
        pids, deadline = set(), time.monotonic() + self.timeout
        while len(pids) < self.processes:
            failed = next((f.exception() for f in jobs if f.done() and f.exception() is not None), None)
            if failed is not None or time.monotonic() > deadline:
                pool.shutdown(cancel_futures=True)
                why = (f"failed while loading (the cause is printed above): {failed}" if failed is not None
                       else f"did not load within {self.timeout:.0f} s")
                raise ServiceError(f"the {self.processes} recommendation processes for {self.bundle} {why}")
            if ready.poll(1.0):
                pids.add(ready.recv())
        ready.close()
        log.info("%d recommendation processes loaded (pids %s)", self.processes, sorted(pids))
        return pool

    def __call__(self, requests: list) -> list:
        from concurrent.futures.process import BrokenProcessPool

        pool = self._pool
        try:
            return pool.submit(_worker_recommend, requests).result()
        except BrokenProcessPool:
            with self._lock:
                if self._pool is pool:  # the first batch to notice starts new processes; the others just fail
                    log.error("a recommendation process died; starting new ones")
                    self._pool = self._start()
                    pool.shutdown(wait=False, cancel_futures=True)
            raise

    def alive(self) -> int:
        """How many recommendation processes are running (0 while the pool is broken, until a batch restarts it)."""
        pool = self._pool
        if getattr(pool, "_broken", False):
            return 0
        return sum(p.is_alive() for p in list((getattr(pool, "_processes", None) or {}).values()))

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)


def create_app(model, *, max_k: int = DEFAULT_MAX_K, max_seeds: int = DEFAULT_MAX_SEEDS,
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES, model_name: str = DEFAULT_MODEL_NAME,
               concurrency: int = DEFAULT_CONCURRENCY, saved_model: str | Path | None = None, warmup: bool = True,
               processes: int = 0, threads: int | None = 1, api_key: str | None = None):
    """A FastAPI app answering from ``model`` (a bundle path or a loaded ``Recommender``).

    ``saved_model`` defaults to the bundle's ``two_tower/saved_model``; the ``:predict`` endpoint uses it.
    ``processes`` > 0 computes ``/recommend`` in that many worker processes (``ProcessRecommender``, each with
    ``threads`` native threads) instead of this one; ``concurrency`` is then ignored (one batch per process).
    ``api_key``: every route but ``OPEN_PATHS`` needs ``Authorization: Bearer <api_key>`` (``None``: no key).
    """
    from concurrent.futures.process import BrokenProcessPool

    import pyarrow.parquet as pq
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from modules import __version__
    from modules.recommender import Recommender, read_manifest

    for name, value in (("max_k", max_k), ("max_seeds", max_seeds), ("max_body_bytes", max_body_bytes),
                        ("concurrency", concurrency)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ServiceError(f"{name} must be a positive integer (got {value!r}).")
    if isinstance(processes, bool) or not isinstance(processes, int) or processes < 0:
        raise ServiceError(f"processes must be an integer >= 0 (got {processes!r}).")
    if isinstance(model, Recommender):
        rec, bundle, manifest = model, Path(model.path), model.manifest
    else:
        # with recommendation processes this process needs only the manifest and the SavedModel: not loading the
        # hybrid here saves a copy of the bundle (~1.9 GB of the demo bundle's ~2 GB per process)
        bundle = Path(model)
        rec = None if processes else Recommender.load(bundle)
        manifest = rec.manifest if rec is not None else read_manifest(bundle)
    n_tracks = len(rec.tracks) if rec is not None else pq.ParquetFile(bundle / "tracks.parquet").metadata.num_rows
    predictor = SavedModelPredictor(saved_model or bundle / "two_tower" / "saved_model")
    # one SavedModel call per playlist: a batch pads every playlist's seeds to the longest and computes them
    # together, which moves scores in the last bits, so an answer would depend on who else is asking
    predict_batched = MicroBatcher(lambda rows: [predictor.predict([seeds], [title])[0] for seeds, title in rows],
                                   name="predict-batcher")
    workers = ProcessRecommender(bundle, processes, threads) if processes else None
    recommend_batched = MicroBatcher(workers or rec.recommend_columns_batch, max_rows=RECOMMEND_BATCH,
                                     name="recommend-batcher", threads=processes or concurrency,
                                     whole_batch_errors=(BrokenProcessPool,))
    if warmup:  # the recommendation processes warm themselves up
        if workers is None:
            _warm_up(rec, min(10, max_k))
        seed = pq.read_table(bundle / "tracks.parquet", columns=["track_uri"]).column(0)[:2].to_pylist()
        predictor.predict([seed], ["warm up"])

    @asynccontextmanager
    async def lifespan(_app):
        yield
        if workers is not None:  # the worker processes go with the server
            workers.close()

    app = FastAPI(title="playlist-engine", version=__version__, lifespan=lifespan,
                  description="Playlist continuation: give seed tracks and/or a title, get the tracks that "
                  "continue the playlist, with score parts and explanations. `/v1/models/{name}:predict` "
                  "speaks TensorFlow Serving's REST format over the exported two-tower SavedModel.")
    app.state.recommender = rec  # None when recommendation processes hold the model
    app.state.predictor = predictor
    app.state.workers = workers
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)
    if api_key is not None:  # added last, so it runs first: no key, nothing read
        if len(api_key) < MIN_API_KEY_LENGTH:
            raise ServiceError(f"api_key must be at least {MIN_API_KEY_LENGTH} characters")
        app.add_middleware(BearerAuthMiddleware, api_key=api_key)
        _document_bearer(app)

    def tf_style(request: Request) -> bool:
        return request.url.path.startswith("/v1/")

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError):
        msg = _summarize(exc.errors())
        if tf_style(request):
            return JSONResponse({"error": msg}, status_code=400)
        # malformed JSON is a 400 (the body is not JSON at all); well-formed JSON of the wrong shape is a 422
        status = 400 if any(e.get("type") == "json_invalid" for e in exc.errors()) else 422
        return JSONResponse({"detail": _error_detail(exc.errors()), "error": msg}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException):
        msg = _clean(exc.detail if isinstance(exc.detail, str) else str(exc.detail))
        if isinstance(exc.__cause__, RecursionError):  # FastAPI's json.loads gave up: say why
            msg = "the JSON body is nested too deeply to parse"
        body = {"error": msg} if tf_style(request) else {"detail": msg, "error": msg}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    public_manifest = _public_manifest(manifest)

    @app.get("/health", summary="readiness: 200 when every part that answers requests is running, else 503",
             response_model=None,
             responses={503: {"description": "a recommendation process or a batcher thread is not running"}})
    def health() -> Response:
        alive = workers.alive() if workers is not None else 0
        batchers = recommend_batched.alive() and predict_batched.alive()
        loaded = rec is not None if workers is None else alive == processes
        ok = batchers and loaded
        body = {"status": "ok" if ok else "unavailable", "bundle_loaded": loaded, "batchers_alive": batchers,
                "recommendation_processes": processes, "recommendation_processes_alive": alive,
                "fingerprint": manifest.get("data", {}).get("fingerprint"), "tracks": int(n_tracks),
                "parts": sorted(manifest.get("parts", {})), "model_name": model_name,
                "limits": {"max_k": max_k, "max_seeds": max_seeds, "max_body_bytes": max_body_bytes}}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metadata", summary="the bundle manifest (data, configuration, validation metrics, versions), "
             "without file-system paths")
    def metadata() -> dict[str, Any]:
        return public_manifest

    @app.post("/recommend", response_model=RecommendResponse,
              summary="the k tracks that best continue a playlist, with score parts and explanations")
    async def recommend(req: RecommendRequest) -> Response:
        if req.k < 1 or req.k > max_k:
            raise HTTPException(422, f"k must be between 1 and {max_k} (got {req.k})")
        if len(req.seed_track_uris) > max_seeds:
            raise HTTPException(422, f"at most {max_seeds} seed tracks per request (got {len(req.seed_track_uris)})")
        t0 = time.perf_counter()
        try:
            (c,) = await recommend_batched([{"seed_track_uris": req.seed_track_uris, "title": req.title, "k": req.k,
                                             "weights": req.weights, "mode": req.mode,
                                             "explain": req.k if req.explain else False}])
        except BrokenProcessPool:
            raise HTTPException(503, "a recommendation process stopped while answering; new ones are starting, "
                                "retry in a minute") from None
        if isinstance(c, Exception):  # e.g. an unknown feature in weights
            raise HTTPException(422, str(c))
        rows = [{"rank": rank, "track_uri": uri, "track_name": name, "artist_name": artist, "score": score,
                 "parts": {"retrieval": retrieval, "rules": rules, "content": content}, "explanation": why}
                for rank, uri, name, artist, score, retrieval, rules, content, why in zip(
                    c["rank"].tolist(), c["track_uri"].tolist(), c["track_name"].tolist(), c["artist_name"].tolist(),
                    _finite_list(c["score"], 0.0), _finite_list(c["retrieval"]), _finite_list(c["rules"]),
                    _finite_list(c["content"]), c["explanation"], strict=True)]
        # the rows are plain str/float/None already: orjson writes them without FastAPI re-validating and
        # re-encoding every field (response_model still documents the shape)
        return Response(orjson.dumps({"recommendations": rows, "took_ms": round(1000 * (time.perf_counter() - t0), 2)}),
                        media_type="application/json")

    def check_name(name: str) -> None:
        if name != model_name:
            raise HTTPException(404, f"Servable not found for request: Latest({name}); this server serves "
                                f"model {model_name!r}")

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
        if len(req.instances) > max_seeds:
            raise HTTPException(400, f"at most {max_seeds} instances per request (got {len(req.instances)})")
        too_many = [i for i, x in enumerate(req.instances) if len(x.seed_track_uris) > max_seeds]
        if too_many:
            raise HTTPException(400, f"instances {too_many[:5]}: at most {max_seeds} seed tracks each")
        preds = await predict_batched([(x.seed_track_uris, x.title) for x in req.instances])
        # 500 URIs and 500 scores per row, already plain str/float: orjson writes them directly, without
        # re-validating ~30 kB per request on the event loop (response_model still documents the shape)
        return Response(orjson.dumps({"predictions": preds}), media_type="application/json")

    return app


def _document_bearer(app) -> None:
    """Declare the bearer key in the OpenAPI schema, so /docs offers "Authorize" and sends it."""
    build = app.openapi

    def openapi():
        if app.openapi_schema is None:
            schema = build()
            schema.setdefault("components", {})["securitySchemes"] = {"apiKey": {"type": "http", "scheme": "bearer"}}
            for path, operations in schema.get("paths", {}).items():
                if path not in OPEN_PATHS:
                    for operation in operations.values():
                        operation["security"] = [{"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def _public_manifest(manifest: dict) -> dict:
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


def limit_native_threads(threads: int | None) -> None:
    """Cap the OpenMP and BLAS thread pools of this process (``None``: leave them).

    One recommendation is small work for many tiny native calls (the fusion's gradient-boosting predict
    runs an OpenMP region per tree); with a pool per core those threads spin and contend, worse still
    when requests overlap. Measured on the 3,000-playlist bundle, 2 busy cores: 1,120 ms per request with
    the default pools, 78 ms with one thread each.
    """
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ServiceError(f"threads must be a positive integer (got {threads!r}).")
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)  # process-wide, for the life of the server
    log.info("native thread pools (OpenMP, BLAS) limited to %d thread(s)", threads)


def freeze_loaded_heap() -> int:
    """Move every object alive now (the loaded bundle: hundreds of thousands of dicts, strings and TensorFlow
    objects) out of the garbage collector's reach; returns how many.

    Python's full collection walks every tracked object: with a bundle loaded that is ~240 ms, a pause every
    request in flight waits through. Those objects live as long as the server, so collecting them is wasted
    work; ``gc.freeze`` skips them (requests' own garbage is still collected)."""
    import gc

    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def request_deadline_protocol(request_timeout: float) -> type:
    """uvicorn's h11 HTTP protocol, closing a connection that has not sent a whole request (request line, headers
    and body) ``request_timeout`` seconds after connecting or after the request's first byte.

    uvicorn 0.54 has no such timeout: its keep-alive timer runs only between requests and any byte cancels it, so
    a client that connects and sends nothing, half a request line, or a body a byte at a time held its connection
    (and, for the body, a task waiting for it) open forever, and a few hundred such clients exhaust the server's
    file descriptors (Slowloris). The deadline is absolute, not per read, so trickling does not extend it, and
    it stops once the request is in: computing the answer is not limited.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class RequestDeadlineProtocol(H11Protocol):
        deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
                self._arm()  # a request under way (keeps the deadline set by its first byte)
            else:
                self._disarm()  # the request is in (or the connection is ending)

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

        def handle_websocket_upgrade(self, event) -> None:
            self._disarm()
            super().handle_websocket_upgrade(event)

        def _arm(self) -> None:
            if self.deadline is None:
                self.deadline = self.loop.call_later(request_timeout, self._expire)

        def _disarm(self) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
                self.deadline = None

        def _expire(self) -> None:
            self.deadline = None
            if not self.transport.is_closing():
                self.logger.info("%s:%s - closed: no whole request within %g s", *(self.client or ("?", 0)),
                                 request_timeout)
                self.transport.close()

    return RequestDeadlineProtocol


def _check_timeouts(keep_alive, request_timeout) -> None:
    for name, value in (("keep_alive", keep_alive), ("request_timeout", request_timeout)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ServiceError(f"{name} must be a positive number of seconds (got {value!r}).")


def make_server(app, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
                keep_alive: int = DEFAULT_KEEP_ALIVE, request_timeout: float = DEFAULT_REQUEST_TIMEOUT):
    """The ``uvicorn.Server`` for ``app`` (not started: ``.run()``): HTTP/1.1 with the request deadline of
    ``request_deadline_protocol`` and ``keep_alive`` seconds for idle connections between requests."""
    import uvicorn

    _check_timeouts(keep_alive, request_timeout)
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_keep_alive=keep_alive,
                                         http=request_deadline_protocol(request_timeout)))


def serve(model: str | Path, *, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
          workers: int = 1, threads: int | None = 1, keep_alive: int = DEFAULT_KEEP_ALIVE,
          request_timeout: float = DEFAULT_REQUEST_TIMEOUT, api_key: str | None = None,
          allow_unauthenticated: bool = False, **options) -> None:
    """Load the bundle, build the app and run it with uvicorn until interrupted.

    With ``workers > 1`` the ``/recommend`` batches are computed by that many worker processes, each loading
    the bundle (``ProcessRecommender``), behind this one HTTP process: the recommender is Python-heavy (the GIL
    serializes threads), so processes are how a second core helps, and one queue in front of them keeps both busy
    (uvicorn's own worker processes split the clients' connections unevenly: one got 20 of 32 and its clients
    waited). ``threads`` caps the native thread pools of each process (see ``limit_native_threads``).
    ``keep_alive`` is uvicorn's idle keep-alive timeout in seconds (its default 5 s is short for a CPU-bound
    server whose event loop can be starved for seconds under load: a connection closed just as the client reuses
    it is a failed request). ``request_timeout`` bounds the time a client may take to send a request
    (``request_deadline_protocol``).

    ``api_key`` (see ``read_api_key``) makes every route but ``/health`` and the docs need it. Binding an address
    other than loopback without one is refused unless ``allow_unauthenticated`` (for a service behind a proxy
    that authenticates), and then warned about.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ServiceError(f"workers must be a positive integer (got {workers!r}).")
    if api_key is None and not is_loopback(host):
        if not allow_unauthenticated:
            raise ServiceError(f"--host {host} lets other machines call the service, and it has no API key: give one "
                               f"with --api-key-file FILE (or ${API_KEY_ENV}), or pass --allow-unauthenticated if a "
                               "proxy in front of it authenticates callers. See docs/serving.md, Security.")
        log.warning("SERVING WITHOUT AN API KEY ON %s: anyone who can reach port %d can call every endpoint", host,
                    port)
    _check_timeouts(keep_alive, request_timeout)
    limit_native_threads(threads)
    t0 = time.perf_counter()
    app = create_app(model, processes=workers if workers > 1 else 0, threads=threads, api_key=api_key, **options)
    server = make_server(app, host=host, port=port, log_level=log_level, keep_alive=keep_alive,
                         request_timeout=request_timeout)
    frozen = freeze_loaded_heap()
    log.info("bundle %s loaded in %.1f s (%d objects kept out of garbage collection%s); serving on http://%s:%d "
             "(docs at /docs)%s", model, time.perf_counter() - t0, frozen,
             f"; {workers} recommendation processes" if workers > 1 else "", host, port,
             "; every route but /health and the docs needs the API key" if api_key is not None else "")
    server.run()
