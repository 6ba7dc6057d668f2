"""The two-tower on several workers (tf.distribute, TF_CONFIG): the cluster's checks, each worker's slice of the
batches, the global-batch loss, and (slow) two worker processes on loopback against one, with a kill and resume."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from modules.cli import main
from modules.errors import ClusterError
from modules.tf_config import parse_tf_config
from modules.two_tower import TwoTowerConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = {"embedding_dim": 16, "hidden_dim": 32, "epochs": 3, "batch_size": 64, "validation_per_category": 4,
        "word_vocab_size": 500, "ngram_vocab_size": 1000, "examples_per_track": 0.3, "k": 50}


def config(workers, index=0, kind="worker", **extra):
    return json.dumps({"cluster": {"worker": workers, **extra}, "task": {"type": kind, "index": index}})


# -- TF_CONFIG -----------------------------------------------------------------------------------------------------

def test_tf_config_is_read():
    c = parse_tf_config(config(["127.0.0.1:2001", "host-b:2002"], 1))
    assert (c.n_workers, c.rank, c.is_chief, c.addresses[0]) == (2, 1, False, "127.0.0.1:2001")
    assert parse_tf_config(config(["a:1", "b:2"], 0)).is_chief
    chief = config(["a:1", "b:2"], 0, kind="chief", chief=["c:3"])
    c = parse_tf_config(chief)
    assert (c.rank, c.is_chief, c.addresses) == (0, True, ("c:3", "a:1", "b:2"))
    c = parse_tf_config(config(["a:1", "b:2"], 0, chief=["c:3"]))  # worker 0 is not the chief when there is one
    assert (c.rank, c.is_chief) == (1, False)
    assert parse_tf_config(config(["[::1]:7"], 0)).n_workers == 1


@pytest.mark.parametrize("text, says", [
    (None, "TF_CONFIG environment variable, and it is not set"),
    ("", "it is not set"),
    ("{cluster: 1}", "is not valid JSON"),
    ("[1, 2]", "must be a JSON object"),
    (json.dumps({"task": {"type": "worker", "index": 0}}), "has no \"cluster\" object"),
    (config(["a:1"], 0, ps=["p:1"]), "names task types ['ps']"),
    (config(["a:1", "b"], 0), "has the address 'b'"),
    (config(["a:1", "a:99999"], 0), "port in 1-65535"),
    (config(["a:1", "a:1"], 0), "twice"),
    (config([], 0), "must be a non-empty list"),
    (json.dumps({"cluster": {"worker": ["a:1"]}}), "has no \"task\" object"),
    (config(["a:1", "b:2"], 2), "\"index\" 2; for type 'worker' it must be an int in 0..1"),
    (config(["a:1", "b:2"], "0"), "\"index\" '0'"),
    (config(["a:1"], 0, kind="evaluator"), "must be one of ['worker']"),
    (config(["a:1"], 0, chief=["c:1", "d:2"]), "2 chiefs"),
])
def test_bad_tf_config_says_what_to_set(text, says, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ClusterError) as err:
        parse_tf_config(text)
    msg = str(err.value)
    assert says in msg and "TF_CONFIG='{\"cluster\": {\"worker\": [" in msg, msg


def test_cli_refuses_a_missing_tf_config_before_any_work(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    args = ["train-two-tower", "--mpd", str(tmp_path / "nothing"), "--out", str(tmp_path / "b"), "--distributed"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: training on several workers needs the TF_CONFIG environment variable")
    monkeypatch.setenv("TF_CONFIG", config(["a:1"], 3))
    assert main(args) == 2 and "\"task\".\"index\" 3" in capsys.readouterr().err
    assert main(args[:-1] + ["--checkpoint-steps", "5"]) == 2
    assert "--checkpoint-steps N needs --distributed" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_help_explains_tf_config(capsys):
    with pytest.raises(SystemExit):
        main(["train-two-tower", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--distributed" in out and "TF_CONFIG='{\"cluster\": {\"worker\": [" in out and "chief" in out


# -- each worker's part of the batches -------------------------------------------------------------------------------

@pytest.mark.parametrize("n_replicas, start", [(2, 0), (4, 3), (1, 1)])
def test_the_workers_slices_make_up_the_single_worker_batches(n_replicas, start, tmp_path):
    """Each worker reads its replicas' slices of every global batch from the epoch on disk; together they are the
    single-worker batches of the in-memory epoch, from the resumed batch on."""
    from modules.two_tower import examples as tt

    gen = np.random.default_rng(2)
    tracks = [gen.permutation(np.arange(1, 300, dtype=np.int32))[: int(n)] for n in gen.integers(1, 90, 80)]
    pl = tt.Playlists(tracks=tracks, has_title=gen.random(80) < 0.7,
                      words=gen.integers(0, 50, (80, 8)).astype(np.int32),
                      ngrams=gen.integers(0, 90, (80, 48)).astype(np.int32))
    cfg = TwoTowerConfig.from_dict({**TINY, "batch_size": 32, "mixed_negatives": 2, "dropout": 0.1})
    ex = tt.make_examples(pl, cfg, np.random.default_rng(4), 299)
    whole = list(ex.batches(pl, cfg.batch_size))[start:]
    assert len(whole) > 5
    L = cfg.batch_size // n_replicas
    disk = tt.write_examples(pl, cfg, np.random.default_rng(4), 299, tmp_path)
    parts = [list(disk.batches(pl, cfg.batch_size, n_replicas=n_replicas, replicas=[r], start_batch=start))
             for r in range(n_replicas)]
    assert all(len(b["target"]) == L for p in parts for b in p)
    assert all(len(p) == len(whole) for p in parts)
    for i, batch in enumerate(whole):
        for key, value in batch.items():
            joined = np.concatenate([p[i][key] for p in parts])
            assert np.array_equal(joined, value), (i, key)
    # two replicas on one worker: their slices in turn, as tf.distribute hands a worker's batches to its replicas
    if n_replicas == 4:
        both = list(disk.batches(pl, cfg.batch_size, n_replicas=4, replicas=[2, 3], start_batch=start))
        assert np.array_equal(both[0]["target"], parts[2][0]["target"])
        assert np.array_equal(both[1]["target"], parts[3][0]["target"])


def test_global_batch_loss_is_the_loss_on_one_replica(train_store, catalog):
    """Without tf.distribute (one replica) the loss of the workers' code is ``compute_loss`` and so are its
    gradients: the all-gather and the rotation change nothing there."""
    import tensorflow as tf

    from modules.two_tower.distributed import global_batch_loss
    from modules.two_tower.examples import encode_playlists, make_examples, playlist_items, sampling_probability
    from modules.two_tower.items import build_items
    from modules.two_tower.retrieval import make_model
    from modules.two_tower.text import fit_title_vectorizers
    from modules.two_tower.towers import make_towers

    cfg = TwoTowerConfig.from_dict({**TINY, "mixed_negatives": 2, "dropout": 0.1, "id_dropout": 0.2})
    tf.keras.utils.set_random_seed(0)
    pids = train_store.playlists["pid"].to_numpy()[:150]
    items = build_items(train_store, pids, catalog[["track_uri", "danceability", "energy"]], cfg)
    tracks, titles = playlist_items(train_store, pids, items)
    words, ngrams = fit_title_vectorizers(cfg, titles)
    pl = encode_playlists(tracks, titles, words, ngrams)
    q, c = make_towers(items, cfg, words.vocabulary_size(), ngrams.vocabulary_size())
    model = make_model(q, c, cfg, sampling_probability(tracks, items, cfg))
    ex = make_examples(pl, cfg, np.random.default_rng(0), items.n_candidates)
    batch = {k: tf.constant(v) for k, v in next(iter(ex.batches(pl, cfg.batch_size))).items()}
    model.compute_loss(batch, training=True)  # builds the variables
    grads = []
    for fn in (lambda: model.compute_loss(batch, training=True), lambda: global_batch_loss(model, batch)):
        with tf.GradientTape() as tape:
            loss = fn()
        grads.append((float(loss), tape.gradient(loss, model.trainable_variables)))
    (a, ga), (b, gb) = grads
    assert a > 0 and a == pytest.approx(b, rel=1e-6)
    for x, y in zip(ga, gb, strict=True):
        x, y = tf.convert_to_tensor(x).numpy(), tf.convert_to_tensor(y).numpy()
        assert np.allclose(x, y, rtol=1e-5, atol=1e-7)


# -- two worker processes on loopback (slow) ---------------------------------------------------------------------

def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def env_for(tf_config: str | None) -> dict:
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("TF_CONFIG", None)
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    return env


def start(cmd: list[str], tf_config: str | None, log: Path) -> subprocess.Popen:
    with open(log, "ab") as f:
        return subprocess.Popen(cmd, cwd=ROOT, env=env_for(tf_config), stdout=f, stderr=subprocess.STDOUT)


def start_workers(base: list[str], logs: Path, tag: str, n: int = 2) -> list[subprocess.Popen]:
    addresses = [f"127.0.0.1:{p}" for p in free_ports(n)]
    return [start(base + ["--distributed"], config(addresses, i), logs / f"{tag}-w{i}.log") for i in range(n)]


def finish(procs, logs: Path, timeout: float = 1800) -> None:
    for p in procs:
        rc = p.wait(timeout=timeout)
        if rc != 0:
            tail = "\n".join(f.read_text()[-3000:] for f in sorted(logs.glob("*.log")))
            raise AssertionError(f"a training process exited with {rc}:\n{tail}")


def best_recall(bundle: Path) -> tuple[float, dict]:
    curve = json.loads((bundle / "two_tower" / "training_curve.json").read_text())
    best = next(r for r in curve["epochs"] if r["epoch"] == curve["best_epoch"])
    return best["validation"]["recall"], curve


@pytest.fixture(scope="module")
def runs(tmp_path_factory, train_store):
    """One worker, and two workers on loopback, trained at the same time on the same data, seed and config."""
    tmp = tmp_path_factory.mktemp("distributed")
    cfg = tmp / "tiny.json"
    cfg.write_text(json.dumps(TINY))
    store = str(train_store.path)

    def base(out):
        return [sys.executable, "-m", "modules", "train-two-tower", "--mpd", store, "--out", str(tmp / out),
                "--config", str(cfg), "--seed", "0"]

    t0 = time.perf_counter()
    procs = [start(base("single"), None, tmp / "single.log")] + start_workers(base("two"), tmp, "two")
    finish(procs, tmp)
    return {"tmp": tmp, "base": base, "seconds": time.perf_counter() - t0}


@pytest.mark.slow
def test_two_workers_reach_the_single_worker_recall(runs):
    tmp = runs["tmp"]
    single, c1 = best_recall(tmp / "single")
    two, c2 = best_recall(tmp / "two")
    assert single > 0.05  # the model learned something, so the comparison means something
    assert abs(two - single) <= 0.01 * single, (single, two)  # within 1 %, relative
    assert len(c1["epochs"]) == len(c2["epochs"]) and all(r["workers"] == 2 for r in c2["epochs"])
    # same examples, batches and negatives: the losses agree to float rounding
    for r1, r2 in zip(c1["epochs"], c2["epochs"], strict=True):
        assert r2["loss"] == pytest.approx(r1["loss"], rel=1e-4)
    # only the chief wrote: the bundle, no checkpoints left, and the other worker said so
    assert (tmp / "two" / "two_tower" / "saved_model").is_dir()
    assert not (tmp / "two" / "two_tower" / "checkpoints").exists()
    assert "worker 1 of 2 done" in (tmp / "two-w1.log").read_text()


@pytest.mark.slow
def test_a_worker_killed_mid_epoch_resumes_from_the_last_checkpoint(runs):
    tmp = runs["tmp"]
    single, _ = best_recall(tmp / "single")
    base = runs["base"]("resumed") + ["--checkpoint-steps", "10"]
    step_doc = tmp / "resumed" / "two_tower" / "checkpoints" / "step.json"
    procs = start_workers(base, tmp, "first")
    deadline = time.time() + 1800
    while time.time() < deadline:  # wait for a mid-epoch checkpoint in epoch 2, then kill worker 1
        if step_doc.exists() and json.loads(step_doc.read_text())["epoch"] >= 2:
            break
        assert all(p.poll() is None for p in procs), "a worker ended before the kill"
        time.sleep(0.2)
    killed_at = json.loads(step_doc.read_text())
    procs[1].send_signal(signal.SIGKILL)
    procs[1].wait()
    try:  # the survivor finds its peer gone (its collectives fail) and says what to do
        assert procs[0].wait(timeout=300) == 2
        said = (tmp / "first-w0.log").read_text()
        assert "error: worker 0 of 2: the cluster lost a worker during epoch 2" in said, said[-3000:]
        assert "run the same command again on every worker" in said
    except subprocess.TimeoutExpired:  # it waits on: stopped too (the resume is what is tested here)
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait()
    assert not (tmp / "resumed" / "two_tower" / "saved_model").exists()

    procs = start_workers(base, tmp, "again")
    finish(procs, tmp)
    log = (tmp / "again-w0.log").read_text()
    assert "resuming from" in log and f"of epoch {killed_at['epoch']}" in log, log[-3000:]
    resumed, curve = best_recall(tmp / "resumed")
    assert len(curve["epochs"]) == TINY["epochs"]
    assert abs(resumed - single) <= 0.01 * single, (single, resumed)
    # the epoch's examples are drawn again and the steps already taken skipped: the run it would have been
    _, straight = best_recall(tmp / "two")
    for r1, r2 in zip(straight["epochs"], curve["epochs"], strict=True):
        assert r2["loss"] == pytest.approx(r1["loss"], rel=1e-6)
        assert r2["validation"]["recall"] == pytest.approx(r1["validation"]["recall"], abs=1e-6)


TWO_REPLICAS = r'''
import json, sys
import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from modules.store import PlaylistStore
from modules.catalog import read_catalog
from modules.two_tower import TwoTowerConfig
import tempfile
from modules.two_tower.distributed import global_batch_loss
from modules.two_tower.examples import (encode_playlists, make_examples, playlist_items, sampling_probability,
                                        write_examples)
from modules.two_tower.items import build_items
from modules.two_tower.retrieval import make_model
from modules.two_tower.text import fit_title_vectorizers
from modules.two_tower.towers import make_towers

store = PlaylistStore(sys.argv[1])
cfg = TwoTowerConfig.from_dict(json.loads(sys.argv[2]))
tf.keras.utils.set_random_seed(0)
pids = store.playlists["pid"].to_numpy()[:150]
items = build_items(store, pids, read_catalog()[["track_uri", "danceability"]], cfg)
tracks, titles = playlist_items(store, pids, items)
words, ngrams = fit_title_vectorizers(cfg, titles)
pl = encode_playlists(tracks, titles, words, ngrams)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    q, c = make_towers(items, cfg, words.vocabulary_size(), ngrams.vocabulary_size())
    model = make_model(q, c, cfg, sampling_probability(tracks, items, cfg))
ex = make_examples(pl, cfg, np.random.default_rng(0), items.n_candidates)
whole = {k: tf.constant(v) for k, v in next(iter(ex.batches(pl, cfg.batch_size))).items()}
model.compute_loss(whole, training=True)
variables = model.trainable_variables
with tf.GradientTape() as tape:
    ref = model.compute_loss(whole, training=True)
ref_grads = [tf.convert_to_tensor(g).numpy() for g in tape.gradient(ref, variables)]
disk = write_examples(pl, cfg, np.random.default_rng(0), items.n_candidates, tempfile.mkdtemp())
parts = [next(iter(disk.batches(pl, cfg.batch_size, n_replicas=2, replicas=[r]))) for r in range(2)]
batch = strategy.experimental_distribute_values_from_function(
    lambda ctx: {k: tf.constant(v) for k, v in parts[ctx.replica_id_in_sync_group].items()})

def replica(batch):
    with tf.GradientTape() as tape:
        loss = global_batch_loss(model, batch)
    return loss, [tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]

@tf.function
def run(batch):
    loss, grads = strategy.run(replica, args=(batch,))
    return strategy.reduce("SUM", loss, axis=None), [strategy.reduce("SUM", g, axis=None) for g in grads]

loss, grads = run(batch)
worst = max(float(np.max(np.abs(g.numpy() - r)) / (np.max(np.abs(r)) + 1e-12)) for g, r in zip(grads, ref_grads))
print(json.dumps({"single": float(ref), "two": float(loss), "worst_grad": worst, "n": len(grads)}))
'''


def test_two_replicas_compute_the_single_worker_loss_and_gradients(train_store, tmp_path):
    """Two replicas (MirroredStrategy over two logical CPUs, in a child process) each take half of a batch: their
    losses sum to the single-worker loss of the whole batch, and so do their gradients, negatives from the other
    replica's half included (the all-gather's gradient reaches the replica that computed the candidates). (Not
    with ``dropout`` > 0, off by default: each replica draws its MLP-input dropout mask from its own slice.)"""
    cfg = {**TINY, "mixed_negatives": 2, "id_dropout": 0.2}
    script = tmp_path / "two_replicas.py"
    script.write_text(TWO_REPLICAS)
    out = subprocess.run([sys.executable, str(script), str(train_store.path), json.dumps(cfg)], cwd=ROOT,
                         env=env_for(None), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["n"] > 10 and got["single"] > 0
    assert got["two"] == pytest.approx(got["single"], rel=1e-5)
    assert got["worst_grad"] < 1e-4, got


def test_a_lost_worker_is_named():
    from modules.two_tower.distributed import _why_lost

    err = Exception("Graph execution error:\n\nDetected at node x\nCollective ops is aborted by: Error reported from "
                    "/job:worker/task:1: The following tasks are unhealthy (stopped sending heartbeats):\n"
                    "/job:worker/replica:0/task:1\nThe tasks have crashed.")
    assert _why_lost(err) == "tasks that stopped sending heartbeats: /job:worker/replica:0/task:1"
    assert _why_lost(Exception("Graph execution error:\n\nSocket closed")) == "Socket closed"
    stack = ("Graph execution error:\n\nDetected at node allgather/CollectiveGatherV2 defined at (most recent call "
             "last):\n  File \"x.py\", line 3, in f\n    y = g()\nrecvmsg:Connection reset by peer\n\t "
             "[[{{node allgather/CollectiveGatherV2}}]] [Op:__inference_step_1]")
    assert _why_lost(Exception(stack)) == "recvmsg:Connection reset by peer"
