"""The training loop: epochs of freshly sampled examples, early stopping on validation recall@500, resume.

Each epoch draws its examples from ``SeedSequence([seed, epoch, 3])``, so an epoch is the same whether the
run was interrupted before it or not; after each epoch the model and optimizer state go to
``checkpoint_dir/last`` and the best epoch's weights to ``checkpoint_dir/best``, with ``state.json`` (curve,
best epoch, patience count and the fingerprint of data, seed and config a resumed run must match).
Inside ``distributed.fit`` the same loop runs on several workers (``distributed.train``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from tqdm import tqdm

from modules.metrics import evaluate
from modules.two_tower import distributed
from modules.two_tower.config import TwoTowerConfig
from modules.two_tower.examples import Playlists, epoch_on_disk, remove_stale_epochs
from modules.two_tower.optimizer import optimizer_name

log = logging.getLogger(__name__)

# Config keys added after bundles were first written: they enter a checkpoint's fingerprint only when set away
# from their default, so a bundle trained before they existed still matches the config it was trained with.
LATER_KEYS = {"optimizer": "auto"}


def fingerprint_config(cfg: TwoTowerConfig, n_tracks: int) -> dict:
    """The config a checkpoint must match: all but the stopping rule, later keys only when not default, and the
    optimizer actually used when it is not the Adam every earlier bundle was trained with."""
    conf = {k: v for k, v in cfg.to_dict().items() if k not in ("epochs", "patience", "min_delta")
            and not (k in LATER_KEYS and v == LATER_KEYS[k])}
    used = optimizer_name(cfg, n_tracks)
    if used != "adam":
        conf["optimizer_used"] = used
    return conf


def data_fingerprint(store, train_pids, cfg: TwoTowerConfig, seed: int, n_items: int,
                     feature_columns: list[str]) -> str:
    """What a checkpoint must match to be resumed: data, seed and config (bar epochs and patience)."""
    h = hashlib.sha256()
    h.update(str(getattr(store, "fingerprint", "")).encode())
    h.update(np.asarray(train_pids, np.int64).tobytes())
    h.update(json.dumps([fingerprint_config(cfg, n_items), int(seed), n_items, feature_columns],
                        sort_keys=True).encode())
    return h.hexdigest()[:16]


def build_variables(model, optimizer, cfg: TwoTowerConfig) -> None:
    """Create every variable (model and optimizer slots), so checkpoints can be restored into them."""
    import tensorflow as tf

    B, S = 2, 2
    dummy = {"seeds": tf.zeros((B, S), tf.int32), "target": tf.ones((B,), tf.int32),
             "words": tf.zeros((B, cfg.max_title_words), tf.int32),
             "ngrams": tf.zeros((B, cfg.max_title_ngrams), tf.int32),
             "seed_drop": tf.zeros((B, S), tf.bool), "target_drop": tf.zeros((B,), tf.bool)}
    model.compute_loss(dummy)
    optimizer.build(model.trainable_variables)


def train_step_fn(model, optimizer):
    """One compiled gradient step on a batch; returns the batch's summed loss."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def step(batch):
        with tf.GradientTape() as tape:
            loss = model.compute_loss(batch, training=True)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return step


def resume(ckdir: Path, ckpt, state: dict, model):
    """Restore the last finished epoch from ``ckdir`` when it was written for the same data and config.

    Returns (state, best weights or None); checkpoints of other data or another config are removed."""
    import tensorflow as tf

    f = ckdir / "state.json"
    best_weights = None
    if f.exists():
        old = json.loads(f.read_text())
        if old.get("fingerprint") == state["fingerprint"] and (ckdir / "last" / "state.index").exists():
            ckpt.read(str(ckdir / "last" / "state")).assert_consumed()
            state = old
            if (ckdir / "best" / "weights.index").exists():
                current = [w.copy() for w in model.get_weights()]
                tf.train.Checkpoint(model=model).read(str(ckdir / "best" / "weights")).assert_consumed()
                best_weights = [w.copy() for w in model.get_weights()]
                model.set_weights(current)
            log.info("resuming from %s after epoch %d", ckdir, state["epoch"])
        else:
            log.warning("checkpoints in %s are from other data or another config; starting afresh", ckdir)
            shutil.rmtree(ckdir, ignore_errors=True)
    ckdir.mkdir(parents=True, exist_ok=True)
    remove_stale_epochs(ckdir)
    return state, best_weights


# validation playlists scored per catalog scan: the scan's [playlists, tracks] float32 scores are what the stage's
# peak grew with (450 × 494,744 tracks = 0.9 GB at 30,000 playlists); a playlist's answer does not depend on the
# others scanned with it (``modules.scan``), so the chunk changes no result
VALIDATION_CHUNK = 32


def validation_summary(rec, split, store) -> dict:
    """``modules.metrics`` summary of ``rec``'s top 500 on the validation split's challenge playlists."""
    rows = {}
    pls = split.challenge["playlists"]
    for a in range(0, len(pls), VALIDATION_CHUNK):
        chunk = pls[a:a + VALIDATION_CHUNK]
        seeds = [[t["track_uri"] for t in p["tracks"]] for p in chunk]
        res = rec._candidates_batch(seeds, [p.get("name") for p in chunk], 500)
        for p, (uris, _) in zip(chunk, res, strict=True):
            rows[p["pid"]] = uris
    artist_of = dict(zip(store.tracks["track_uri"], store.tracks["artist_name"], strict=True))
    return evaluate(rows, split.truth, artist_of=artist_of).summary()


def _train_epoch(step, model, optimizer, pl: Playlists, n_candidates: int, cfg: TwoTowerConfig, seed: int,
                 epoch: int, show_progress: bool, scratch: Path | None = None) -> dict:
    """Sample epoch ``epoch``'s examples to disk (in ``scratch``, ``examples.epoch_on_disk``) and take a step per
    full batch read back from there; the curve row (without validation)."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), epoch, 3]))
    t0 = time.perf_counter()
    losses = []
    with epoch_on_disk(pl, cfg, rng, n_candidates, scratch) as ex:
        n_batches = ex.n_batches(cfg.batch_size)
        bar = tqdm(ex.dataset(pl, cfg.batch_size), total=n_batches, desc=f"epoch {epoch}/{cfg.epochs}",
                   unit="batch", disable=not show_progress, leave=False)
        for batch in bar:
            losses.append(float(step(batch)))
            if len(losses) % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]) / cfg.batch_size:.3f}")
        bar.close()
    if hasattr(optimizer, "catch_up"):
        optimizer.catch_up(model.trainable_variables)
    train_s = time.perf_counter() - t0
    return {"epoch": epoch, "examples": n_batches * cfg.batch_size,
            "loss": float(np.mean(losses) / cfg.batch_size) if losses else float("nan"),
            "train_seconds": round(train_s, 2),
            "examples_per_s": round(n_batches * cfg.batch_size / max(train_s, 1e-9), 1)}


def _report(row: dict, show_progress: bool) -> None:
    val = row.get("validation")
    log.info("epoch %d: loss %.4f, %.0f examples/s%s", row["epoch"], row["loss"], row["examples_per_s"],
             f", validation recall@500 {val['recall']:.4f} ndcg {val['ndcg']:.4f}" if val else "")
    if show_progress:
        tqdm.write(f"epoch {row['epoch']}: loss {row['loss']:.4f}, {row['examples_per_s']:.0f} examples/s"
                   + (f", val recall@500 {val['recall']:.4f}, ndcg {val['ndcg']:.4f}" if val else ""))


def train(model, optimizer, pl: Playlists, n_candidates: int, cfg: TwoTowerConfig, *, seed: int, fingerprint: str,
          validate: Callable[[], dict] | None = None, checkpoint_dir: str | Path | None = None,
          show_progress: bool = False) -> dict:
    """Train ``model`` for up to ``cfg.epochs`` epochs and leave the chosen epoch's weights in it.

    ``validate`` returns the metrics summary of the model as it is (``None``: no validation, every epoch is
    trained and the last one kept). With it, an epoch counts as better when its recall@500 beats the best by
    more than ``cfg.min_delta``; ``cfg.patience`` epochs without one stop training. Returns the state:
    ``curve`` (a row per epoch), ``epoch`` (the last trained), ``best_epoch``, ``best``, ``bad``.
    """
    import tensorflow as tf

    run = distributed.current()
    if run is not None:  # a fit on several workers (distributed.fit): the same loop, on tf.distribute
        return distributed.train(run, model, optimizer, pl, n_candidates, cfg, seed=seed, fingerprint=fingerprint,
                                 validate=validate, checkpoint_dir=checkpoint_dir, show_progress=show_progress)
    ckpt = tf.train.Checkpoint(model=model, optimizer=optimizer)
    state = {"fingerprint": fingerprint, "epoch": 0, "curve": [], "best_epoch": 0, "best": -1.0, "bad": 0}
    ckdir = Path(checkpoint_dir) if checkpoint_dir else None
    best_weights = None
    if ckdir is not None:
        state, best_weights = resume(ckdir, ckpt, state, model)

    step = train_step_fn(model, optimizer)
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        if validate is not None and state["bad"] >= cfg.patience:
            break
        t0 = time.perf_counter()
        row = _train_epoch(step, model, optimizer, pl, n_candidates, cfg, seed, epoch, show_progress, ckdir)
        if validate is not None:
            summary = validate()
            row["validation"] = {k: round(v, 6) for k, v in summary["ALL"].items() if k != "count"}
            metric = summary["ALL"]["recall"]
            if metric > state["best"] + cfg.min_delta:
                state.update(best=metric, best_epoch=epoch, bad=0)
                best_weights = [w.copy() for w in model.get_weights()]
                if ckdir is not None:
                    tf.train.Checkpoint(model=model).write(str(ckdir / "best" / "weights"))
            else:
                state["bad"] += 1
        row["seconds"] = round(time.perf_counter() - t0, 2)
        state["curve"].append(row)
        state["epoch"] = epoch
        _report(row, show_progress)
        if ckdir is not None:
            ckpt.write(str(ckdir / "last" / "state"))
            (ckdir / "state.json").write_text(json.dumps(state, indent=1))
    if best_weights is not None:
        model.set_weights(best_weights)
    return state
