"""``submit``: fit any recommender on training playlists and write an official submission."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from modules.cli.options import STORE_URI_NOTE, engine_options
from modules.spark.session import path_or_uri

# methods that --engine spark fits on Spark (the class, imported only then)
SPARK_METHODS = {"als": "modules.spark.als:SparkALSRecommender"}


def register(sub: argparse._SubParsersAction) -> None:
    from modules.methods import METHODS

    p = sub.add_parser("submit", help="fit a method (baseline or model) and write a challenge submission",
                       description="Fit METHOD on the training playlists (MPD slices or a store) and write "
                       "500 recommendations per challenge playlist as an official submission CSV. Score it "
                       "with `python -m modules evaluate`.")
    p.add_argument("method", choices=sorted(METHODS), metavar="METHOD",
                   help="one of: " + ", ".join(sorted(METHODS)))
    p.add_argument("--train", required=True, type=path_or_uri, metavar="MPD_DIR_OR_STORE",
                   help="training playlists" + STORE_URI_NOTE)
    p.add_argument("--challenge", required=True, type=Path, metavar="CHALLENGE.json")
    p.add_argument("--out", required=True, type=Path, metavar="SUBMISSION.csv")
    p.add_argument("--params", default="{}", metavar="JSON",
                   help='constructor parameters as JSON, e.g. \'{"factors": 64}\'; {"load": DIR} loads a model saved '
                   "by its own training command instead of fitting")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    engine_options(p, "local (default); spark: fit on Spark where it can (als: MLlib's implicit ALS, the same "
                   "parameters and folder format; slices are ingested on Spark), recommend here; docs/scale.md")
    p.set_defaults(func=cmd_submit)


def cmd_submit(args) -> int:
    from modules.atomic import check_output_file
    from modules.base import recommend_challenge
    from modules.cli.options import construct, json_object
    from modules.errors import InputError, MissingInputError
    from modules.methods import method_class
    from modules.mpd import read_challenge
    from modules.spark.session import engine_and_master, is_uri
    from modules.spark.storage import check_uri_engine
    from modules.store import open_store
    params = json_object(args.params)
    engine, master = engine_and_master(args.engine, args.spark, default="local")
    check_uri_engine("--train", args.train, engine)
    if engine == "spark" and args.method not in SPARK_METHODS:
        raise InputError(f"--engine spark fits {', '.join(SPARK_METHODS)} only, not {args.method!r}; drop --engine "
                         "spark for it.")
    check_output_file(args.out, inputs=[args.challenge] + ([] if is_uri(args.train) else [args.train]))
    challenge = read_challenge(args.challenge)
    t0 = time.perf_counter()
    if "load" in params:  # a model trained earlier on the same training playlists (e.g. by train-two-tower)
        if not Path(params["load"]).exists():
            raise MissingInputError(f"--params load: {params['load']} does not exist; pass the folder or file "
                                    f"written by the {args.method} training command.")
        rec = method_class(args.method).load(params["load"])
    elif engine == "spark":
        import importlib

        from modules.spark.ingest import open_store_spark
        from modules.spark.session import session_for

        params.setdefault("seed", args.seed)
        module, name = SPARK_METHODS[args.method].split(":")
        cls = getattr(importlib.import_module(module), name)
        with session_for(master) as spark:
            rec = construct(cls, {**params, "spark": spark})
            rec.fit(open_store_spark(args.train, spark))  # a URI: fetched here, read by Spark where it is
    else:
        params.setdefault("seed", args.seed)
        rec = construct(method_class(args.method), params)
        store = open_store(args.train, show_progress=True)
        rec.fit(store)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = recommend_challenge(rec, challenge, args.out)
    rec_s = time.perf_counter() - t0
    print(f"submit {args.method}: fit {fit_s:.1f} s, {len(rows)} playlists in {rec_s:.1f} s "
          f"({1000 * rec_s / max(len(rows), 1):.1f} ms each) -> {args.out}")
    return 0
