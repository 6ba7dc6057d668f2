"""``train`` (every part, one bundle) and ``recommend`` (a submission, or one playlist as a table)."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

from modules.cli.options import STORE_URI_NOTE, engine_options
from modules.spark.session import path_or_uri


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train the hybrid recommender into one model bundle",
                       description="Ingest the playlists, train the two-tower, mine the rules, fit the content "
                       "model, learn the fusion on validation playlists carved from the training data, and write "
                       "one bundle folder (manifest.json + parts). Load it with Recommender.load(BUNDLE_DIR).")
    p.add_argument("--mpd", required=True, type=path_or_uri, metavar="DIR",
                   help="MPD slices or a playlist store" + STORE_URI_NOTE)
    p.add_argument("--out", required=True, type=Path, metavar="BUNDLE_DIR")
    p.add_argument("--features", type=Path, metavar="STORE_OR_CATALOG",
                   help="audio features: a feature store (.sqlite) or a catalog file (default: the shipped catalog)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--epochs", type=int, help="two-tower epochs (default: its config, with early stopping)")
    p.add_argument("--params", default="{}", metavar="JSON",
                   help='HybridRecommender parameters, e.g. \'{"n_candidates": 1000, "rules": {"min_count": 2}}\'. '
                   '"rules" takes min_count, max_consequents and smoothing (the evidence filter; without them it is '
                   'chosen on validation playlists), max_rules (that choice\'s budget, default 5000000), '
                   'min_support, min_confidence, max_len, aggregation; see docs/rules.md')
    engine_options(p, "local (default): every part here; spark: the data-heavy parts on Spark (slices ingested "
                   "there, rules by the Spark miner, the ALS part by MLlib), the rest here (docs/scale.md)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("recommend", help="recommend with a trained bundle: a submission, or one playlist",
                       description="With --challenge: write an official submission (500 unique non-seed tracks "
                       "per playlist). With --playlist FILE.json or --seeds/--title: print one playlist's "
                       "recommendations with their explanations.")
    p.add_argument("--model", required=True, type=path_or_uri, metavar="BUNDLE_DIR",
                   help="the bundle; with --engine spark and --challenge also its URI (file:///…, hdfs://…, "
                   "s3a://…), which every executor fetches")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--challenge", type=Path, metavar="CHALLENGE.json")
    src.add_argument("--playlist", type=Path, metavar="FILE.json",
                     help="one playlist: {\"name\"?, \"tracks\": [{\"track_uri\"}...]} or a bare list of URIs")
    src.add_argument("--seeds", nargs="*", metavar="URI", help="seed track URIs (may be empty with --title)")
    p.add_argument("--title", help="playlist title (with --seeds)")
    p.add_argument("--out", type=Path, metavar="SUBMISSION.csv", help="submission file (with --challenge)")
    p.add_argument("-k", type=int, default=20, help="rows to print for one playlist (default 20)")
    p.add_argument("--weight", action="append", default=[], metavar="FEATURE=W",
                   help="emphasize an audio feature, e.g. --weight energy=3 (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    engine_options(p, "with --challenge: local (default) scores here; spark scores on Spark's executors, the bundle "
                   "loaded once per Python worker, the same file byte for byte (docs/scale.md)",
                   " (the workers must see the bundle's path, or add --ship-bundle)")
    p.add_argument("--ship-bundle", action="store_true",
                   help="spark engine: send the bundle to every executor (a zip archive, SparkContext.addArchive) "
                   "instead of reading it at its path")
    p.set_defaults(func=cmd_recommend)


def cmd_train(args) -> int:
    from modules.cli.options import json_object
    from modules.recommender import train_bundle
    from modules.spark.session import engine_and_master
    from modules.spark.storage import check_uri_engine

    params = json_object(args.params)
    engine, master = engine_and_master(args.engine, args.spark, default="local")
    check_uri_engine("--mpd", args.mpd, engine)
    t0 = time.perf_counter()
    rec = train_bundle(args.mpd, args.out, features=args.features, seed=args.seed, epochs=args.epochs,
                       params=params, engine=engine, spark=master)
    m = rec.manifest
    val = m["validation"]
    fused = val.get("fusion", {}).get(val.get("chosen"), {})
    print(f"train: {m['data']['playlists']:,} playlists, {m['data']['tracks']:,} tracks; parts "
          f"{', '.join(m['parts'])}; fusion {m['fusion']}; validation NDCG {fused.get('ndcg', float('nan')):.4f} "
          f"(two-tower alone {val.get('two_tower_alone', {}).get('ndcg', float('nan')):.4f}) on "
          f"{val.get('playlists', 0)} playlists; {time.perf_counter() - t0:.0f} s -> {args.out}")
    return 0


def _argument_text(value: str, flag: str) -> str:
    """A command-line argument as text. Arguments whose bytes are not UTF-8 reach Python with each bad byte as a
    surrogate escape (U+DC80-U+DCFF), which nothing downstream can encode: say which argument and byte, or, when
    the bytes are UTF-8 after all (a terminal that declared another encoding), decode them."""
    from modules.errors import InputError
    from modules.query import check_text, lone_surrogate

    if lone_surrogate(value) is None:
        return value
    try:
        raw = os.fsencode(value)
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{flag} is not valid UTF-8: the byte 0x{raw[err.start]:02x} at byte {err.start} of "
                         f"{raw!r}; pass UTF-8 text (check the encoding of the terminal or script)") from None
    except UnicodeEncodeError:  # a surrogate that no bytes decode to
        return check_text(value, flag)


def _weights(items: list[str]) -> dict[str, float] | None:
    from modules.errors import InputError

    out = {}
    for item in items:
        item = _argument_text(item, "--weight")
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise InputError(f"--weight expects FEATURE=NUMBER, got {item!r}") from None
        if not sep:
            raise InputError(f"--weight expects FEATURE=NUMBER, got {item!r}")
        if not math.isfinite(out[name.strip()]) or out[name.strip()] < 0:
            raise InputError(f"--weight {item!r}: the weight must be a finite number >= 0")
    return out or None


def _check_features(rec, weights: dict[str, float] | None) -> None:
    """Every --weight names an audio feature of the model's content part."""
    from modules.errors import InputError

    allowed = rec.audio_features
    bad = [f for f in weights or {} if f not in allowed]
    if bad:
        raise InputError(f"--weight: unknown features {bad}; this model knows {allowed or 'none'}.")


def cmd_recommend(args) -> int:
    from modules.atomic import check_output_file
    from modules.cli.options import at_least
    from modules.errors import InputError
    from modules.mpd import load_json, read_challenge, validate_playlist, write_submission
    from modules.recommender import Recommender
    from modules.spark.session import engine_and_master
    from modules.spark.storage import check_uri_engine

    at_least(args.k, 1, "-k")
    engine, master = engine_and_master(args.engine, args.spark, default="local")
    check_uri_engine("--model", args.model, engine)
    if engine == "spark" and not args.challenge:
        raise InputError("--engine spark scores a challenge file: give --challenge CHALLENGE.json --out FILE.csv "
                         "(one playlist is answered here, without Spark).")
    if args.ship_bundle and engine != "spark":
        raise InputError("--ship-bundle sends the bundle to Spark's executors; add --spark MASTER or drop it.")
    if args.seeds is not None:  # checked before the bundle loads
        args.seeds = [_argument_text(s, "--seeds") for s in args.seeds]
    if args.title is not None:
        args.title = _argument_text(args.title, "--title")
    weights = _weights(args.weight)
    if args.challenge:  # every input and the output checked before the model loads and the work starts
        if not args.out:
            raise InputError("--challenge needs --out SUBMISSION.csv")
        check_output_file(args.out, inputs=[args.challenge])
        challenge = read_challenge(args.challenge)
        if engine == "spark":
            from modules.spark.recommend import recommend_spark
            from modules.spark.session import session_for

            with session_for(master) as spark:
                t0 = time.perf_counter()
                rows, done = recommend_spark(spark, args.model, challenge["playlists"], 500, ship=args.ship_bundle)
            n = write_submission(args.out, rows)
            print(f"recommend (spark on {master}): {n} playlists in {time.perf_counter() - t0:.1f} s by "
                  f"{done['workers']} Python workers -> {args.out}")
            return 0
        rec = Recommender.load(args.model)
        t0 = time.perf_counter()
        frames = rec.recommend_batch(challenge["playlists"], 500, show_progress=True)
        n = write_submission(args.out, ((p["pid"], f["track_uri"].tolist())
                                        for p, f in zip(challenge["playlists"], frames)))
        print(f"recommend: {n} playlists in {time.perf_counter() - t0:.1f} s -> {args.out}")
        return 0
    if args.playlist:
        doc = load_json(args.playlist, "playlist file")
        if isinstance(doc, list):
            doc = {"pid": 0, "tracks": [{"track_uri": u} for u in doc]}
        if isinstance(doc, dict):
            doc.setdefault("pid", 0)
        validate_playlist(args.playlist, 0, doc, need_tracks=False, fill_missing=False)
        seeds, title = [t["track_uri"] for t in doc["tracks"]], doc.get("name")
    else:
        seeds, title = list(args.seeds or []), args.title
    rec = Recommender.load(args.model)
    _check_features(rec, weights)
    frame = rec.recommend(seeds, title, k=args.k, weights=weights, explain=args.k)
    if args.json:
        print(frame.to_json(orient="records", indent=1))
        return 0
    unknown = rec.unknown_seeds(seeds)
    if seeds and len(unknown) == len(seeds):
        print("note: none of the seeds is known to this model; answering from the title and popularity",
              file=sys.stderr)
    for r in frame.itertuples():
        print(f"{r.rank:3d}. {r.track_name} - {r.artist_name}  [{r.score:.3f}]  {r.track_uri}")
        if r.explanation:
            print(f"     {r.explanation}")
    return 0
