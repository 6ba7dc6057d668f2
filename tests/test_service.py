"""The REST service: a real uvicorn server on a loopback port over the session's tiny bundle."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from loopback_server import free_port, serving, uvicorn_server

from modules.bundle import Bundle
from modules.errors import BundleError, ServiceError
from modules.recommender import Recommender
from modules.service import create_app, freeze_loaded_heap, limit_native_threads

# fastapi's TestClient warns that starlette prefers httpx2; httpx is what the project pins
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

MAX_K = 100
MAX_SEEDS = 20
MAX_BODY = 4096


@pytest.fixture(scope="module")
def rec(tiny_bundle):
    return Recommender.load(tiny_bundle)


@pytest.fixture(scope="module")
def app(rec):
    return create_app(rec, max_k=MAX_K, max_seeds=MAX_SEEDS, max_body_bytes=MAX_BODY, model_name="tt")


@pytest.fixture(scope="module")
def server(app):
    """The app behind a real uvicorn server in a thread; yields its base URL."""
    with serving(lambda port: uvicorn_server(app, port)) as (url, _):
        yield url


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def seeds(rec):
    return rec.tracks.sort_values(["count", "track_uri"], ascending=[False, True])["track_uri"].iloc[:5].tolist()


def test_health_metadata_docs(client, rec):
    r = client.get("/health")
    assert r.status_code == 200
    h = r.json()
    assert h["status"] == "ok" and h["tracks"] == len(rec.tracks) and h["model_name"] == "tt"
    assert h["limits"] == {"max_k": MAX_K, "max_seeds": MAX_SEEDS, "max_body_bytes": MAX_BODY}
    r = client.get("/metadata")
    assert r.status_code == 200 and r.json() == public_manifest(rec)
    assert r.json()["format"] == "playlist-bundle/2"
    r = client.get("/docs")
    assert r.status_code == 200 and "swagger" in r.text.lower()
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/recommend", "/health", "/metadata", "/v1/models/{name}:predict"} <= set(paths)


def public_manifest(rec) -> dict:
    """The manifest as /metadata shows it: the training data's path reduced to its last part."""
    out = json.loads(json.dumps(rec.manifest))
    out["data"]["source"] = os.path.basename(out["data"]["source"])
    return out


def test_recommend_matches_recommender(client, rec, seeds):
    r = client.post("/recommend", json={"seed_track_uris": seeds, "title": "summer party", "k": 30})
    assert r.status_code == 200, r.text
    got = r.json()["recommendations"]
    want = rec.recommend(seeds, "summer party", 30, explain=30)
    assert [g["track_uri"] for g in got] == want["track_uri"].tolist()
    assert np.allclose([g["score"] for g in got], want["score"].to_numpy())
    assert [g["explanation"] for g in got] == want["explanation"].tolist()
    assert any(g["explanation"] for g in got)
    assert set(got[0]) >= {"track_uri", "score", "parts", "explanation"}
    assert set(got[0]["parts"]) == {"retrieval", "rules", "content"}
    for part in ("retrieval", "rules", "content"):  # JSON has no NaN: a missing part is null
        expected = [None if not np.isfinite(v) else pytest.approx(v) for v in want[part]]
        assert [g["parts"][part] for g in got] == expected
    assert [g["track_name"] for g in got] == want["track_name"].tolist()
    assert [g["rank"] for g in got] == list(range(1, 31))
    uris = [g["track_uri"] for g in got]
    assert len(set(uris)) == 30 and not set(uris) & set(seeds)


def test_recommend_title_only_and_empty(client):
    r = client.post("/recommend", json={"title": "chill vibes", "k": 5})
    assert r.status_code == 200 and len(r.json()["recommendations"]) == 5
    r = client.post("/recommend", json={})  # nothing known: still k popular tracks, default k 50
    assert r.status_code == 200 and len(r.json()["recommendations"]) == 50
    r = client.post("/recommend", json={"seed_track_uris": ["spotify:track:unknown"], "k": 3, "explain": False})
    assert r.status_code == 200 and [x["explanation"] for x in r.json()["recommendations"]] == ["", "", ""]


def test_recommend_weights_and_mode(client, rec, seeds):
    feature = list(rec.hybrid.content_.features)[0]
    r = client.post("/recommend", json={"seed_track_uris": seeds, "k": 10, "weights": {feature: 3.0}})
    assert r.status_code == 200
    want = rec.recommend(seeds, None, 10, {feature: 3.0}, explain=False)
    assert [x["track_uri"] for x in r.json()["recommendations"]] == want["track_uri"].tolist()
    r = client.post("/recommend", json={"seed_track_uris": seeds, "k": 10, "mode": "collaborative"})
    want = rec.recommend(seeds, None, 10, mode="collaborative", explain=False)
    assert [x["track_uri"] for x in r.json()["recommendations"]] == want["track_uri"].tolist()


BAD_RECOMMEND = [
    ("k zero", {"k": 0}, "k must be between 1 and 100"),
    ("k above max", {"k": MAX_K + 1}, "k must be between 1 and 100"),
    ("k negative", {"k": -5}, "k must be between"),
    ("k string", {"k": "10"}, "body.k"),
    ("k float", {"k": 2.5}, "body.k"),
    ("seeds a string", {"seed_track_uris": "spotify:track:x"}, "body.seed_track_uris"),
    ("seed not a string", {"seed_track_uris": ["spotify:track:x", 3]}, "body.seed_track_uris.1"),
    ("too many seeds", {"seed_track_uris": [f"spotify:track:{i}" for i in range(MAX_SEEDS + 1)]},
     f"at most {MAX_SEEDS} seed tracks"),
    ("title a number", {"title": 5}, "body.title"),
    ("unknown field", {"seeds": []}, "body.seeds: Extra inputs are not permitted"),
    ("unknown weight", {"weights": {"loudness_of_love": 2.0}}, "unknown features"),
    ("negative weight", {"weights": {"energy": -1.0}}, "must be a finite number >= 0"),
    ("bad mode", {"mode": "psychic"}, "body.mode"),
    ("body a list", [1, 2], "body"),
]


@pytest.mark.parametrize("name,body,message", BAD_RECOMMEND, ids=[b[0] for b in BAD_RECOMMEND])
def test_recommend_bad_input(client, name, body, message):
    r = client.post("/recommend", json=body)
    assert r.status_code == 422, (name, r.status_code, r.text)
    assert message in r.json()["error"], r.json()


def test_bad_json_and_content(client):
    r = client.post("/recommend", content=b'{"k": 5,', headers={"content-type": "application/json"})
    assert r.status_code == 400 and "invalid JSON at character 8" in r.json()["error"], r.json()
    r = client.post("/recommend", content=b"k=5", headers={"content-type": "text/plain"})
    assert 400 <= r.status_code < 500 and r.json()["error"]
    r = client.get("/recommend")
    assert r.status_code == 405


def test_body_limit(client):
    big = {"seed_track_uris": ["spotify:track:" + "x" * 50] * 100}  # ~7 kB > MAX_BODY
    r = client.post("/recommend", json=big)
    assert r.status_code == 413 and "larger than the limit of 4096 bytes" in r.json()["error"]

    def chunks():  # no Content-Length: the limit is enforced while the body streams in
        data = json.dumps(big).encode()
        for a in range(0, len(data), 1000):
            yield data[a:a + 1000]

    r = client.post("/recommend", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "larger than the limit" in r.json()["error"]
    assert client.get("/health").status_code == 200  # the server is fine afterwards


def test_predict_matches_saved_model(client, tiny_bundle, seeds):
    import tensorflow as tf

    instances = [{"seed_track_uris": seeds, "title": "summer party"},
                 {"seed_track_uris": seeds[:1], "title": ""},
                 {"title": "chill"}]
    r = client.post("/v1/models/tt:predict", json={"instances": instances})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert len(preds) == 3

    fn = tf.saved_model.load(str(Bundle(tiny_bundle).saved_model)).signatures["serving_default"]
    for inst, pred in zip(instances, preds, strict=True):
        s = inst.get("seed_track_uris", []) or [""]
        out = fn(seed_track_uris=tf.constant([s]), title=tf.constant([inst.get("title", "")]))
        want_uris = [u.decode() for u in out["track_uris"].numpy()[0]]
        assert pred["track_uris"] == want_uris
        assert np.allclose(pred["scores"], out["scores"].numpy()[0], atol=1e-5)
        assert not set(pred["track_uris"]) & set(inst.get("seed_track_uris", []))
    # padding a batch with "" does not change a row's answer
    assert preds[1]["track_uris"] == client.post("/v1/models/tt:predict", json={"instances": instances[1:2]}).json()[
        "predictions"][0]["track_uris"]
    r = client.get("/v1/models/tt")
    assert r.status_code == 200 and r.json()["model_version_status"][0]["state"] == "AVAILABLE"


BAD_PREDICT = [
    ("wrong model", "other", {"instances": [{"title": "x"}]}, 404, "Servable not found"),
    ("no instances", "tt", {}, 400, "instances"),
    ("empty instances", "tt", {"instances": []}, 400, "instances"),
    ("seeds not a list", "tt", {"instances": [{"seed_track_uris": "a"}]}, 400, "seed_track_uris"),
    ("title not a string", "tt", {"instances": [{"title": 3}]}, 400, "title"),
    ("bad signature", "tt", {"signature_name": "x", "instances": [{"title": "x"}]}, 400, "serving_default"),
    ("too many seeds", "tt", {"instances": [{"seed_track_uris": ["a"] * (MAX_SEEDS + 1)}]}, 400, "at most"),
]


@pytest.mark.parametrize("name,model,body,status,message", BAD_PREDICT, ids=[b[0] for b in BAD_PREDICT])
def test_predict_bad_input(client, name, model, body, status, message):
    r = client.post(f"/v1/models/{model}:predict", json=body)
    assert r.status_code == status, (name, r.text)
    assert message in r.json()["error"]  # TensorFlow Serving's error shape: {"error": "..."}


def test_concurrent_requests_agree_with_serial(client, rec):
    uris = rec.tracks["track_uri"].tolist()
    rng = np.random.default_rng(0)
    bodies = [{"seed_track_uris": rng.choice(uris, size=n, replace=False).tolist(), "title": t, "k": 20}
              for n, t in zip([0, 1, 3, 5, 10, 2, 8, 4] * 2, ["rock", "", "chill", "party"] * 4, strict=True)]
    serial = [client.post("/recommend", json=b).json() for b in bodies]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda b: client.post("/recommend", json=b).json(), bodies))
    for s, p in zip(serial, parallel, strict=True):  # whoever else was asking: the same answer to the bit
        assert p["recommendations"] == s["recommendations"]


def test_testclient_and_app_errors(app, tiny_bundle, tmp_path, rec):
    from fastapi.testclient import TestClient

    with TestClient(app) as tc:
        assert tc.post("/recommend", json={"k": 2}).status_code == 200
        assert tc.post("/recommend", json={"k": True}).status_code == 422  # a bool is not an integer k
    with pytest.raises(ServiceError, match="max_k must be a positive integer"):
        create_app(rec, max_k=0, warmup=False)
    with pytest.raises(BundleError, match="not a model bundle"):
        create_app(tmp_path / "nothing")
    with pytest.raises(ServiceError, match="no SavedModel"):
        create_app(rec, saved_model=tmp_path, warmup=False)
    with pytest.raises(ServiceError, match="threads must be a positive integer"):
        limit_native_threads(0)
    limit_native_threads(None)  # leaves the pools alone


def test_serve_help_and_bad_bundle(tmp_path):
    r = subprocess.run([sys.executable, "-m", "modules", "serve", "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0
    for flag in ("--model", "--host", "--port", "--max-k", "--max-body-bytes", "--max-seeds", "--workers",
                 "--api-key-file", "--allow-unauthenticated", "--request-timeout"):
        assert flag in r.stdout
    r = subprocess.run([sys.executable, "-m", "modules", "serve", "--model", str(tmp_path / "nope")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "not a model bundle" in r.stderr
    r = subprocess.run([sys.executable, "-m", "modules", "serve", "--model", str(tmp_path), "--threads", "-1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "--threads must be >= 0" in r.stderr


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_serve_cli_starts_and_answers(tiny_bundle, workers, tmp_path):
    """The command itself: a subprocess serving the bundle (one or two worker processes) with an API key, then
    stopped; the key is nowhere in its log (access log included)."""
    port, key = free_port(), "cli-test-key-" + "q9" * 12
    (tmp_path / "key").write_text(key + "\n")
    (tmp_path / "key").chmod(0o600)
    log_file = (tmp_path / "serve.log").open("w+b")
    proc = subprocess.Popen([sys.executable, "-m", "modules", "serve", "--model", str(tiny_bundle), "--port",
                             str(port), "--log-level", "debug", "--workers", str(workers), "--api-key-file",
                             str(tmp_path / "key")], stdout=log_file, stderr=log_file)
    auth = {"Authorization": f"Bearer {key}"}
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not come up"
            time.sleep(0.5)
        for _ in range(4):
            r = httpx.post(f"http://127.0.0.1:{port}/recommend", json={"title": "rock", "k": 7}, timeout=30,
                           headers=auth)
            assert r.status_code == 200 and len(r.json()["recommendations"]) == 7
        r = httpx.post(f"http://127.0.0.1:{port}/recommend", json={"k": 0}, timeout=30, headers=auth)
        assert r.status_code == 422
        r = httpx.post(f"http://127.0.0.1:{port}/recommend", json={"k": 3}, timeout=30)
        assert r.status_code == 401
    finally:
        proc.terminate()
        proc.wait(30)
        log_file.close()
    text = (tmp_path / "serve.log").read_text(errors="replace")
    assert "POST /recommend HTTP/1.1" in text and key not in text, text[-2000:]


def test_loaded_heap_is_kept_out_of_garbage_collection(app):
    """A full collection walks every tracked object (~240 ms with the demo bundle loaded, a pause every request
    in flight waits through); after freezing, the loaded objects are no longer walked."""
    import gc

    before = len(gc.get_objects())
    try:
        frozen = freeze_loaded_heap()
        assert frozen >= before // 2 and len(gc.get_objects()) < before // 10
        assert app.state.recommender.recommend([], "rock", k=3).shape[0] == 3  # the app still answers
    finally:
        gc.unfreeze()


def test_micro_batcher_answers_each_caller_and_batches_under_load():
    import threading
    import time

    from modules.service import MicroBatcher

    calls = []

    def fn(rows):
        calls.append(len(rows))
        time.sleep(0.02)  # a model call; callers arriving meanwhile wait for the next batch
        return [f"{t}:{len(s)}" for s, t in rows]

    batcher = MicroBatcher(fn, max_rows=8)
    start = threading.Barrier(24)

    def call(i):
        start.wait()
        return batcher.call([(["x"] * (i % 3), f"t{i}")] * (1 + i % 2))

    with ThreadPoolExecutor(24) as pool:
        got = list(pool.map(call, range(24)))
    assert got == [[f"t{i}:{i % 3}"] * (1 + i % 2) for i in range(24)]
    assert sum(calls) == sum(1 + i % 2 for i in range(24)) and max(calls) > 1 and max(calls) <= 8

    def broken(rows):
        raise ValueError("model failed")

    with pytest.raises(ValueError, match="model failed"):
        MicroBatcher(broken).call([(["a"], "t")])


def test_concurrent_predict_requests_agree_with_serial(client, rec):
    uris = rec.tracks["track_uri"].tolist()
    rng = np.random.default_rng(1)
    bodies = [{"instances": [{"seed_track_uris": rng.choice(uris, size=n, replace=False).tolist(), "title": t}]}
              for n, t in zip([0, 1, 3, 5, 10, 2, 8, 4] * 2, ["rock", "", "chill", "party"] * 4, strict=True)]
    serial = [client.post("/v1/models/tt:predict", json=b).json()["predictions"] for b in bodies]
    with ThreadPoolExecutor(16) as pool:
        parallel = list(pool.map(lambda b: client.post("/v1/models/tt:predict", json=b).json()["predictions"],
                                 bodies))
    for s, p in zip(serial, parallel, strict=True):
        assert s[0]["track_uris"] == p[0]["track_uris"]



def test_recommendation_processes_answer_like_the_recommender(tiny_bundle, rec):
    """``--workers 2``: /recommend computed by two spawned processes behind this one; the answers are the
    recommender's, a bad request fails alone, and the processes end with the app."""
    from fastapi.testclient import TestClient

    app = create_app(tiny_bundle, processes=2, model_name="tt")
    workers = app.state.workers
    uris = rec.tracks["track_uri"].tolist()
    rng = np.random.default_rng(1)
    bodies = [{"seed_track_uris": rng.choice(uris, size=n, replace=False).tolist(), "title": t, "k": 15}
              for n, t in zip([0, 1, 3, 5, 10, 2, 8, 4] * 2, ["rock", "", "chill", "party"] * 4, strict=True)]
    bodies[5]["weights"] = {"energyy": 2.0}  # unknown feature: a 422 for this request only
    assert app.state.recommender is None  # this process keeps only the manifest and the SavedModel
    with TestClient(app) as c:
        health = c.get("/health").json()
        assert health["recommendation_processes"] == 2 and health["tracks"] == len(rec.tracks)
        assert health["recommendation_processes_alive"] == 2 and health["status"] == "ok"
        assert c.get("/metadata").json() == public_manifest(rec)
        with ThreadPoolExecutor(8) as pool:
            got = list(pool.map(lambda b: c.post("/recommend", json=b), bodies))
        assert len(workers._pool._processes) == 2
        for i, (b, r) in enumerate(zip(bodies, got, strict=True)):
            if i == 5:
                assert r.status_code == 422 and "unknown features" in r.json()["error"], r.text
                continue
            assert r.status_code == 200, r.text
            want = rec.recommend(b["seed_track_uris"], b["title"], b["k"], explain=b["k"])
            got_rows = r.json()["recommendations"]
            assert [x["track_uri"] for x in got_rows] == want["track_uri"].tolist()
            assert np.allclose([x["score"] for x in got_rows], want["score"].to_numpy(), rtol=1e-3, atol=1e-4)
            assert [x["explanation"] for x in got_rows] == want["explanation"].tolist()
        # a recommendation process dies (killed for memory, say): the request that meets it gets a 503, new
        # processes start, and the service answers again
        import os
        import signal

        pool = workers._pool
        os.kill(next(iter(pool._processes)), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not pool._broken:
            assert time.monotonic() < deadline, "the pool did not notice its dead process"
            time.sleep(0.05)
        r = c.get("/health")  # the real state: not ready (it said "ok" whatever happened)
        assert r.status_code == 503 and r.json()["status"] == "unavailable", r.text
        assert r.json()["recommendation_processes_alive"] == 0 and r.json()["bundle_loaded"] is False
        r = c.post("/recommend", json=bodies[0])
        assert r.status_code == 503 and "retry" in r.json()["error"]
        assert workers._pool is not pool and len(workers._pool._processes) == 2
        r = c.get("/health")
        assert r.status_code == 200 and r.json()["recommendation_processes_alive"] == 2, r.text
        again = c.post("/recommend", json=bodies[0]).json()["recommendations"]
        assert [x["track_uri"] for x in again] == [x["track_uri"] for x in got[0].json()["recommendations"]]
        procs = list(workers._pool._processes.values())
    for p in procs:  # the app's shutdown stopped them
        p.join(30)
        assert not p.is_alive()


def test_micro_batcher_threads_share_the_queue():
    """With two threads (two recommendation processes), a free thread takes its share of the queue, not all of it."""
    import time

    from modules.service import MicroBatcher

    seen = []

    def fn(rows):
        seen.append((threading.current_thread().name, len(rows)))
        time.sleep(0.05)
        return rows

    batcher = MicroBatcher(fn, max_rows=32, name="t", workers=2)
    start = threading.Barrier(24)

    def call(i):
        start.wait()
        return batcher.call([i])

    with ThreadPoolExecutor(24) as pool:
        assert list(pool.map(call, range(24))) == [[i] for i in range(24)]
    assert {name for name, _ in seen} == {"t-0", "t-1"}
    assert sum(n for _, n in seen) == 24 and max(n for _, n in seen) <= 12


def test_recommendation_processes_that_cannot_load_fail_fast(tmp_path):
    """A bundle the processes cannot load is an error at start-up that says so, not a wait for the timeout."""
    from modules.service import ProcessRecommender

    with pytest.raises(ServiceError, match="recommendation processes .* failed while loading"):  # not a timeout
        ProcessRecommender(tmp_path, 1, timeout=300)


def test_the_old_threads_keywords_still_work_with_a_warning(tmp_path):
    """``threads`` meant native threads in ``serve``/``create_app`` and worker threads in ``MicroBatcher``; the
    new names say which, the old ones still work."""
    from modules.service import MicroBatcher, serve

    with pytest.warns(DeprecationWarning, match=r"MicroBatcher\(threads=...\) is deprecated; pass workers="):
        batcher = MicroBatcher(lambda rows: rows, name="old", threads=2)
    assert len(batcher._threads) == 2 and batcher.call([1, 2]) == [1, 2]
    with pytest.warns(DeprecationWarning, match="native_threads="), pytest.raises(BundleError, match="not a model"):
        serve(tmp_path / "missing", threads=None)  # None: the pools are left alone
