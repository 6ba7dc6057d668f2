"""The two-tower on several workers: tf.distribute's ``MultiWorkerMirroredStrategy``, configured from ``TF_CONFIG``.

Every worker runs the same command with its own ``TF_CONFIG`` (``parse_tf_config`` checks it and says what to
set). Each worker holds a full copy of the model (the embedding tables fit one machine up to the full MPD:
docs/scale.md, "The two-tower on several workers", says why no parameter server), builds the same epoch of
examples from the seed and trains on its slice of every global batch; gradients are summed across workers by
collective all-reduce over gRPC.

The loss is the single-worker loss of the *global* batch: each worker's candidate vectors are all-gathered
(differentiably: the gradient flows back to the worker that computed them) so every query still sees the other
``batch_size - 1`` targets of its batch as negatives, not only those of its own slice. Same seed, same global
batch, same epochs: the same examples, batches, negatives and ID dropout as ``training.train``; only the order of
float sums differs (and, with ``dropout`` > 0, off by default, the MLP-input dropout masks: the query tower seeds
them by the first example of the batch it is given, here each worker's slice).

Checkpoints are those of ``training.train`` (``last/``, ``best/``, ``state.json``: a run on one worker and a run
on several can resume each other's epochs) plus, every ``checkpoint_steps`` steps, a mid-epoch one (``step/``,
``step.json``) so a worker that dies mid-epoch costs at most that many steps: restart every worker with the same
command and training resumes there (the epoch's examples are drawn again from the seed and the steps already
taken are skipped). The chief writes them; the other workers write theirs to a temporary folder and delete it,
the tf.distribute convention (every worker must take part in a save). The checkpoint folder must be on storage
every worker sees (the same path: NFS, a shared disk).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from modules.errors import ClusterError, InputError
from modules.tf_config import TF_CONFIG_HELP, Cluster, parse_tf_config  # noqa: F401  (the CLI's entry points)
from modules.two_tower.config import TwoTowerConfig
from modules.two_tower.examples import Playlists, epoch_on_disk, remove_stale_epochs

log = logging.getLogger(__name__)

def make_strategy(cluster: Cluster):
    """``MultiWorkerMirroredStrategy`` for ``cluster``, its collectives over gRPC (the ring implementation, the
    one that runs on CPUs). Call it first, before any other TensorFlow call of the process (tf.distribute
    configures the runtime's server when the strategy is made)."""
    import tensorflow as tf

    # TF_CONFIG is what the strategy's cluster resolver reads: make sure it holds what was checked
    log.info("worker %d of %d (%s), chief %s", cluster.rank, cluster.n_workers, cluster.addresses[cluster.rank],
             cluster.addresses[0])
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.RING)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def _why_lost(err) -> str:
    """The telling part of TensorFlow's message for a lost worker (which tasks stopped sending heartbeats, or the
    transport's complaint), not the graph's stack."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "unhealthy" in line:
            tasks = [t for t in lines[i + 1:i + 4] if t.startswith("/job:")]
            return "tasks that stopped sending heartbeats: " + ", ".join(tasks or ["?"])
    keys = ("Collective ops is aborted", "Connection reset", "Socket closed", "Failed to connect", "by peer")
    told = [line for line in lines if any(k in line for k in keys)]
    if not told:
        told = [line for line in lines if not line.startswith(("File ", "Detected at node", "[[", "Graph execution"))]
    return (told[0].split(" [[")[0] if told else type(err).__name__)[:300]


# -- the run a TwoTowerRecommender.fit is part of ------------------------------------------------------------------

@dataclass
class Run:
    """A fit on several workers: ``training.train`` hands its work to ``train`` while one is active."""

    strategy: object
    cluster: Cluster
    rec: object  # the TwoTowerRecommender being fitted (its items and title vocabularies rebuild the model)
    checkpoint_steps: int | None = None
    restart: bool = False


_CURRENT: list[Run] = []


def current() -> Run | None:
    """The active run (``fit``), or None: ``training.train`` trains on this process alone then."""
    return _CURRENT[-1] if _CURRENT else None


@contextlib.contextmanager
def _active(run: Run):
    _CURRENT.append(run)
    try:
        yield run
    finally:
        _CURRENT.pop()


def fit(rec, store, strategy, cluster: Cluster, *, checkpoint_steps: int | None = None, restart: bool = False):
    """``rec.fit(store)`` with its training loop on the workers of ``strategy``; returns ``rec``.

    Every worker calls it with the same recommender settings and data. ``checkpoint_steps``: also checkpoint every
    that many steps within an epoch (``None``: at the end of each epoch only). ``restart``: ignore checkpoints
    left in ``rec.checkpoint_dir`` (the chief's caller deletes them)."""
    if checkpoint_steps is not None and (not isinstance(checkpoint_steps, int) or checkpoint_steps < 1):
        raise InputError(f"checkpoint_steps must be a positive int or None, got {checkpoint_steps!r}.")
    with _active(Run(strategy, cluster, rec, checkpoint_steps, restart)):
        return rec.fit(store)


# -- the loss of the global batch ----------------------------------------------------------------------------------

def global_batch_loss(model, batch):
    """``TwoTowerModel.compute_loss`` of the global batch, computed on one replica's slice of it: the summed loss
    of this replica's queries against every replica's candidates (all-gathered, then rotated so this replica's
    own targets come first, where the task expects each query's positive). The sum over replicas is the
    single-worker loss of the whole batch; with one replica it is ``compute_loss`` itself."""
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    q, c, ids = model.embed(batch)
    shift = -tf.cast(ctx.replica_id_in_sync_group, tf.int32) * tf.shape(ids)[0]
    with _placed():
        c = ctx.all_gather(tf.identity(c), axis=0)  # (one call per dtype: its gradient packs the list)
        ids = ctx.all_gather(tf.identity(ids), axis=0)
    c, ids = tf.roll(c, shift, axis=0), tf.roll(ids, shift, axis=0)
    return model.batch_loss(q, c, ids, batch)


def _placed():
    """A device scope for collectives called in a ``tf.function``: they need tensors placed on a device, which with
    one replica per worker they are not (and ``ReplicaContext.devices`` fails on workers other than the first)."""
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    if not tf.distribute.has_strategy():  # the default strategy (one process, no tf.distribute): nothing to place
        return contextlib.nullcontext()
    local = strategy.extended.worker_devices
    return tf.device(local[0]) if len(local) == 1 else contextlib.nullcontext()


def distributed_step_fn(strategy, model, optimizer):
    """One synchronous step over the workers: each replica's gradient of its part of the global loss, summed by
    the optimizer's all-reduce; returns the global batch's summed loss."""
    import tensorflow as tf

    def replica_step(batch):
        with tf.GradientTape() as tape:
            loss = global_batch_loss(model, batch)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    @tf.function(reduce_retracing=True)
    def step(batch):
        return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_step, args=(batch,)), axis=None)

    return step


def broadcast(strategy, values, is_chief: bool) -> np.ndarray:
    """The chief's ``values`` (float64 array) on every worker (an all-reduce where only the chief's first replica
    adds anything); also a barrier: every worker waits here for all the others."""
    import tensorflow as tf

    x = tf.constant(np.asarray(values, np.float64) * (1.0 if is_chief else 0.0))

    def fn(x):
        ctx = tf.distribute.get_replica_context()
        with _placed():
            own = tf.where(tf.equal(ctx.replica_id_in_sync_group, 0), x, tf.zeros_like(x))
            return ctx.all_reduce(tf.distribute.ReduceOp.SUM, own)

    run = tf.function(lambda x: strategy.run(fn, args=(x,)))  # (eagerly, tf.distribute warns of its overhead)
    return strategy.experimental_local_results(run(x))[0].numpy()


# -- the model on the workers --------------------------------------------------------------------------------------

def replicate(run: Run, model, optimizer, cfg: TwoTowerConfig):
    """(model, optimizer) like ``model`` and ``optimizer`` but with mirrored variables (made in the strategy's
    scope) holding ``model``'s values: the same initialization as a single-worker run of the same seed."""
    from modules.two_tower.retrieval import make_model
    from modules.two_tower.towers import make_towers
    from modules.two_tower.training import build_variables

    rec = run.rec
    with run.strategy.scope():
        q, c = make_towers(rec.items_, cfg, rec.words_layer_.vocabulary_size(), rec.ngrams_layer_.vocabulary_size())
        dmodel = make_model(q, c, cfg, model.sampling_prob.numpy())
        dopt = optimizer.__class__.from_config(optimizer.get_config())
        build_variables(dmodel, dopt, cfg)
    shapes = [tuple(v.shape) for v in model.weights]
    if [tuple(v.shape) for v in dmodel.weights] != shapes:
        raise RuntimeError("the model rebuilt for the workers differs from the one fit built "
                           f"({len(dmodel.weights)} vs {len(shapes)} variables); the two must be made alike")
    dmodel.set_weights(model.get_weights())
    return dmodel, dopt


# -- checkpoints ---------------------------------------------------------------------------------------------------

def _write_json(path: Path, doc: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)


class Checkpoints:
    """Where this worker writes: the chief in ``ckdir``, the others in a temporary folder they delete."""

    def __init__(self, ckdir: Path | None, cluster: Cluster):
        self.ckdir = ckdir
        self.chief = cluster.is_chief
        self.scratch = None if self.chief or ckdir is None else Path(tempfile.mkdtemp(
            prefix=f"two-tower-worker-{cluster.rank}-"))

    def write(self, ckpt, name: str) -> None:
        """Write ``ckpt`` (every worker must) under ``name``, a path prefix relative to the checkpoint folder."""
        ckpt.write(str((self.ckdir if self.chief else self.scratch) / name))
        if not self.chief:
            shutil.rmtree(self.scratch / name.split("/")[0], ignore_errors=True)

    def close(self):
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def read_resume_point(ckdir: Path | None, fingerprint: str, restart: bool) -> tuple[dict | None, dict | None]:
    """(``state.json`` if its checkpoint can be resumed, ``step.json`` if a mid-epoch one after it can)."""
    if ckdir is None or restart or not (ckdir / "state.json").exists() and not (ckdir / "step.json").exists():
        return None, None
    state = step = None
    f = ckdir / "state.json"
    if f.exists():
        old = json.loads(f.read_text())
        if old.get("fingerprint") == fingerprint and (ckdir / "last" / "state.index").exists():
            state = old
    s = ckdir / "step.json"
    if s.exists():
        old = json.loads(s.read_text())
        done = state["epoch"] if state else 0
        if (old.get("fingerprint") == fingerprint and old.get("epoch") == done + 1
                and (ckdir / (str(old.get("name")) + ".index")).exists()):
            step = old
    return state, step


def train(run: Run, model, optimizer, pl: Playlists, n_candidates: int, cfg: TwoTowerConfig, *, seed: int,
          fingerprint: str, validate=None, checkpoint_dir=None, show_progress: bool = False) -> dict:
    """``training.train`` on the workers of ``run`` (same arguments, same returned state; ``model`` ends with
    the chosen epoch's weights on every worker). Validation runs on the chief, which tells the others the metric
    that decides early stopping."""
    import tensorflow as tf

    from modules.two_tower.training import _report

    strategy, cluster = run.strategy, run.cluster
    R = strategy.num_replicas_in_sync
    if cfg.batch_size % R:
        raise InputError(f"batch_size {cfg.batch_size} must be a multiple of the number of replicas ({R}: "
                         f"{cluster.n_workers} workers) so that every worker takes an equal part of each batch; "
                         "set batch_size in --config.")
    chief = cluster.is_chief
    if cfg.dropout > 0 and R > 1 and chief:
        log.warning("dropout %s: each worker draws the MLP-input dropout mask of its slice of a batch (seeded by "
                    "the slice's first example, not the batch's), so training matches one worker in distribution, "
                    "not to float rounding", cfg.dropout)
    show_progress = show_progress and chief
    dmodel, dopt = replicate(run, model, optimizer, cfg)
    ckpt = tf.train.Checkpoint(model=dmodel, optimizer=dopt)
    ckdir = Path(checkpoint_dir) if checkpoint_dir else None
    state = {"fingerprint": fingerprint, "epoch": 0, "curve": [], "best_epoch": 0, "best": -1.0, "bad": 0}
    best_weights = None

    old, step_doc = read_resume_point(ckdir, fingerprint, run.restart)
    if old is not None:
        ckpt.read(str(ckdir / "last" / "state")).assert_consumed()
        state = old
        if (ckdir / "best" / "weights.index").exists():
            current_w = [w.copy() for w in model.get_weights()]
            tf.train.Checkpoint(model=model).read(str(ckdir / "best" / "weights")).assert_consumed()
            best_weights = [w.copy() for w in model.get_weights()]
            model.set_weights(current_w)
    if step_doc is not None:
        ckpt.read(str(ckdir / step_doc["name"])).assert_consumed()
    # every worker must have read the same point before the chief changes anything in ckdir
    agreed = broadcast(strategy, [state["epoch"], step_doc["step"] if step_doc else 0], chief)
    if (int(agreed[0]), int(agreed[1])) != (state["epoch"], step_doc["step"] if step_doc else 0):
        raise ClusterError(f"worker {cluster.rank} found checkpoints at epoch {state['epoch']} but the chief at "
                           f"epoch {int(agreed[0])}, step {int(agreed[1])}: the checkpoint folder {ckdir} must be "
                           "the same storage on every worker (give every worker the same --out on shared storage).")
    if old is not None or step_doc is not None:
        log.info("resuming from %s after epoch %d%s", ckdir, state["epoch"],
                 f", step {step_doc['step']} of epoch {step_doc['epoch']}" if step_doc else "")
    elif chief and ckdir is not None and ckdir.exists() and not run.restart and any(ckdir.iterdir()):
        log.warning("checkpoints in %s are from other data or another config; starting afresh", ckdir)
        shutil.rmtree(ckdir, ignore_errors=True)
    if chief and ckdir is not None:
        ckdir.mkdir(parents=True, exist_ok=True)
        remove_stale_epochs(ckdir)
    saves = Checkpoints(ckdir, cluster)

    step = distributed_step_fn(strategy, dmodel, dopt)
    lost = (tf.errors.UnavailableError, tf.errors.AbortedError, tf.errors.DeadlineExceededError)
    try:
        for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
            if validate is not None and state["bad"] >= cfg.patience:
                break
            t0 = time.perf_counter()
            resume_at = step_doc if step_doc is not None and step_doc["epoch"] == epoch else None
            row = _train_epoch(run, step, dmodel, dopt, ckpt, saves, pl, n_candidates, cfg, seed, epoch, R,
                               fingerprint, resume_at, show_progress)
            step_doc = None
            model.set_weights(dmodel.get_weights())
            if validate is not None:
                summary = validate() if chief else None
                metric = float(broadcast(strategy, [summary["ALL"]["recall"] if chief else 0.0], chief)[0])
                if chief:
                    row["validation"] = {k: round(v, 6) for k, v in summary["ALL"].items() if k != "count"}
                if metric > state["best"] + cfg.min_delta:
                    state.update(best=metric, best_epoch=epoch, bad=0)
                    best_weights = [w.copy() for w in model.get_weights()]
                    if chief and ckdir is not None:
                        tf.train.Checkpoint(model=model).write(str(ckdir / "best" / "weights"))
                else:
                    state["bad"] += 1
            row["seconds"] = round(time.perf_counter() - t0, 2)
            row["workers"] = cluster.n_workers
            state["curve"].append(row)
            state["epoch"] = epoch
            if chief:
                _report(row, show_progress)
            if ckdir is not None:
                saves.write(ckpt, "last/state")
                if chief:
                    _write_json(ckdir / "state.json", state)
                    (ckdir / "step.json").unlink(missing_ok=True)
                    shutil.rmtree(ckdir / "step", ignore_errors=True)
    except lost as err:
        where = f"the checkpoints in {ckdir} are kept" if ckdir is not None else "no checkpoint folder was given"
        first = _why_lost(err)
        raise ClusterError(f"worker {cluster.rank} of {cluster.n_workers}: the cluster lost a worker during epoch "
                           f"{state['epoch'] + 1} ({first}); {where}: run the same command again on every worker "
                           "to resume from the last one.") from None
    finally:
        saves.close()
    if best_weights is not None:
        model.set_weights(best_weights)
    return state


def _train_epoch(run: Run, step, dmodel, dopt, ckpt, saves: Checkpoints, pl: Playlists, n_candidates: int,
                 cfg: TwoTowerConfig, seed: int, epoch: int, R: int, fingerprint: str,
                 resume_at: dict | None, show_progress: bool) -> dict:
    """``training._train_epoch`` on the workers: the same examples (drawn from the seed on every worker), each
    worker padding and training its slices; a mid-epoch checkpoint every ``run.checkpoint_steps`` steps."""
    import tensorflow as tf

    strategy, cluster = run.strategy, run.cluster
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), epoch, 3]))
    t0 = time.perf_counter()
    start = int(resume_at["step"]) if resume_at else 0
    losses = list(resume_at["losses"]) if resume_at else []
    every = run.checkpoint_steps
    # the chief's epoch files go beside its checkpoints; the others', which must not race the chief's clean-up
    # there, to their own temporary folder
    with epoch_on_disk(pl, cfg, rng, n_candidates, saves.ckdir if saves.chief else None) as ex:
        n_batches = ex.n_batches(cfg.batch_size)

        def dataset_fn(ctx: tf.distribute.InputContext):
            k = R // ctx.num_input_pipelines
            ds = ex.dataset(pl, cfg.batch_size, n_replicas=R, start_batch=start,
                            replicas=[ctx.input_pipeline_id * k + j for j in range(k)])
            opts = tf.data.Options()
            opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF  # sliced
            return ds.with_options(opts)

        ds = strategy.distribute_datasets_from_function(dataset_fn)
        bar = tqdm(ds, total=n_batches, initial=start, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch",
                   disable=not show_progress, leave=False)
        for i, batch in enumerate(bar, start=start + 1):
            losses.append(float(step(batch)))
            if len(losses) % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-20:]) / cfg.batch_size:.3f}")
            if every and saves.ckdir is not None and i % every == 0 and i < n_batches:
                name = f"step/state-{epoch}-{i}"
                saves.write(ckpt, name)
                if saves.chief:  # the new checkpoint is complete before step.json names it; then the older goes
                    doc = saves.ckdir / "step.json"
                    old = json.loads(doc.read_text()).get("name") if doc.exists() else None
                    _write_json(doc, {"fingerprint": fingerprint, "epoch": epoch, "step": i, "name": name,
                                      "losses": losses, "workers": cluster.n_workers})
                    if old and old != name:
                        for f in (saves.ckdir / old).parent.glob(Path(old).name + ".*"):
                            f.unlink(missing_ok=True)
                log.info("epoch %d: checkpoint after step %d of %d", epoch, i, n_batches)
        bar.close()
    if hasattr(dopt, "catch_up"):
        dopt.catch_up(dmodel.trainable_variables)
    train_s = time.perf_counter() - t0
    done = n_batches - start
    return {"epoch": epoch, "examples": n_batches * cfg.batch_size,
            "loss": float(np.mean(losses) / cfg.batch_size) if losses else float("nan"),
            "train_seconds": round(train_s, 2),
            "examples_per_s": round(done * cfg.batch_size / max(train_s, 1e-9), 1)}
