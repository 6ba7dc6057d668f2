"""``train-two-tower``: train the inductive two-tower and write its bundle (``BUNDLE_DIR/two_tower/``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from modules.atomic import FolderKind
from modules.bundle import Bundle
from modules.tf_config import TF_CONFIG_HELP


def _two_tower_only(folder: Path) -> bool:
    """A folder written by train-two-tower: its two_tower/ part alone (complete, or checkpoints to resume)."""
    part = Bundle(folder).two_tower_dir
    return [p.name for p in folder.iterdir()] == [part.name] and part.is_dir()


# Not a full bundle of `train` (manifest.json): replacing its two-tower would leave its fusion trained on another.
TWO_TOWER_KIND = FolderKind("two-tower bundle (a folder holding only two_tower/)", None, None, also=_two_tower_only)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train-two-tower", help="train the two-tower retrieval model (TFRS) and export a SavedModel",
        description="Train the inductive two-tower on MPD slices (or a store) and write BUNDLE_DIR/two_tower/: "
        "vocabularies, config, training curve, weights and saved_model/ (serving_default(seed_track_uris, "
        "title) -> top-500 track_uris and scores, loadable with plain TensorFlow). A validation split carved "
        "from the training playlists drives early stopping on recall@500. Checkpoints are kept in "
        "BUNDLE_DIR/two_tower/checkpoints/ while it runs: run the same command again to resume an "
        "interrupted training.")
    p.add_argument("--mpd", required=True, type=Path, metavar="MPD_DIR_OR_STORE",
                   help="training playlists: a directory of mpd.slice.*.json files or a playlist store")
    p.add_argument("--out", required=True, type=Path, metavar="BUNDLE_DIR", help="bundle directory to write")
    p.add_argument("--epochs", type=int, metavar="N", help="maximum epochs (default: from the config, 15)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--config", type=Path, metavar="FILE",
                   help="JSON file of TwoTowerConfig fields to override, e.g. {\"embedding_dim\": 96}")
    p.add_argument("--features", type=Path, metavar="CATALOG",
                   help="audio-feature catalog (Parquet/CSV, Spotify Tracks schema; default: the shipped one)")
    p.add_argument("--restart", action="store_true", help="ignore existing checkpoints and train from scratch")
    p.add_argument("--keep-checkpoints", action="store_true",
                   help="keep BUNDLE_DIR/two_tower/checkpoints/ after a finished training (default: removed "
                   "then, since the bundle holds the chosen weights; they matter only for resuming)")
    p.add_argument("--distributed", action="store_true",
                   help="train on several workers with tf.distribute (MultiWorkerMirroredStrategy), the cluster "
                   "read from the TF_CONFIG environment variable: run this same command on every worker, each "
                   "with its own TF_CONFIG (below)")
    p.add_argument("--checkpoint-steps", type=int, metavar="N",
                   help="with --distributed: also checkpoint every N steps within an epoch, so a worker that dies "
                   "mid-epoch costs at most N steps (default: at the end of each epoch only)")
    p.epilog = ("Several workers (--distributed): " + TF_CONFIG_HELP + " Every worker reads --mpd (the same data) "
                "and BUNDLE_DIR/two_tower/checkpoints/, so BUNDLE_DIR must be the same path on storage every worker "
                "sees; only the chief writes the bundle and checkpoints (the others write theirs to a temporary "
                "folder and delete it). --config's batch_size is the global batch, split evenly between the "
                "workers; same seed, batch and epochs train the same model as on one worker up to float rounding. "
                "A worker died? Run the same command again on every worker: training resumes from the last "
                "checkpoint. docs/scale.md, \"The two-tower on several workers\".")
    p.set_defaults(func=cmd_train_two_tower)


def cmd_train_two_tower(args) -> int:
    import shutil

    from modules.atomic import check_output_folder
    from modules.errors import InputError, MissingInputError
    from modules.store import open_store
    from modules.two_tower import TwoTowerConfig, TwoTowerRecommender

    cluster = strategy = None
    if args.checkpoint_steps is not None and (not args.distributed or args.checkpoint_steps < 1):
        raise InputError("--checkpoint-steps N needs --distributed and N >= 1 (a single worker checkpoints at the "
                         "end of each epoch).")
    if args.distributed:  # first: the strategy must exist before TensorFlow does anything else
        from modules.tf_config import parse_tf_config
        from modules.two_tower.distributed import make_strategy

        cluster = parse_tf_config()
        strategy = make_strategy(cluster)
    chief = cluster is None or cluster.is_chief
    overrides = {}
    if args.config is not None:
        if not args.config.is_file():
            raise MissingInputError(f"--config {args.config} does not exist; pass a JSON file of config fields.")
        try:
            overrides = json.loads(args.config.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"--config {args.config} is not valid JSON ({err}).") from None
        if not isinstance(overrides, dict):
            raise InputError(f"--config {args.config} must hold a JSON object of config fields.")
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    try:
        config = TwoTowerConfig.from_dict(overrides)
    except (TypeError, ValueError) as err:  # from_dict only checks the fields given
        raise InputError(f"{err} (from {'--config ' + str(args.config) if args.config else '--epochs'})") from None
    if chief:
        check_output_folder(args.out, TWO_TOWER_KIND, inputs=[args.mpd, args.features, args.config])
    features = None
    if args.features is not None:
        from modules.catalog import read_catalog

        features = read_catalog(args.features)
    store = open_store(args.mpd, show_progress=True)
    ckdir = Bundle(args.out).checkpoints
    if args.restart and chief:
        shutil.rmtree(ckdir, ignore_errors=True)
    rec = TwoTowerRecommender(config, features=features, seed=args.seed, checkpoint_dir=ckdir, show_progress=chief)
    if cluster is None:
        rec.fit(store)
    else:
        from modules.two_tower import distributed

        distributed.fit(rec, store, strategy, cluster, checkpoint_steps=args.checkpoint_steps, restart=args.restart)
        if not chief:
            print(f"train-two-tower: worker {cluster.rank} of {cluster.n_workers} done, {len(rec.curve_)} epochs "
                  f"in {rec.fit_seconds_:.0f} s; the chief ({cluster.addresses[0]}) writes {args.out}")
            return 0
    root = rec.save(args.out)
    if not args.keep_checkpoints:
        shutil.rmtree(ckdir, ignore_errors=True)
    best = next((r for r in rec.curve_ if r["epoch"] == rec.best_epoch_), {})
    val = best.get("validation")
    ex_s = [r["examples_per_s"] for r in rec.curve_]
    print(f"train-two-tower: {len(rec.curve_)} epochs, best epoch {rec.best_epoch_}"
          + (f" (validation recall@500 {val['recall']:.4f}, NDCG {val['ndcg']:.4f})" if val else "")
          + (f", {sum(ex_s) / len(ex_s):,.0f} examples/s" if ex_s else "")
          + f", {rec.fit_seconds_:.0f} s -> {root}")
    return 0
