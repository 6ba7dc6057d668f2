"""Data commands: world, ingest, stats, challenge, evaluate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from modules.atomic import FolderKind
from modules.cli.options import engine_options
from modules.spark.session import path_or_uri

WORLD_FORMAT = "playlist-world/1"
WORLD_MARKER = "world.json"


def _older_world(folder: Path) -> bool:
    """A folder of slices written by ``world`` before it wrote world.json: nothing but world slices."""
    from modules.mpd import SLICE_NAME

    entries = list(folder.iterdir())
    if not entries or not all(SLICE_NAME.match(p.name) and p.is_file() for p in entries):
        return False
    with open(entries[0], "rb") as f:
        return b'"generated_on":"world-' in f.read(512)


WORLD_KIND = FolderKind("playlist world (slices written by `world`)", WORLD_MARKER, "playlist-world/",
                        also=_older_world)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("world", help="generate the playlist world (MPD-format slices over the shipped catalog)",
                       description="Write N generated playlists as mpd.slice.<a>-<b>.json files of 1,000 each. "
                       "Same seed and catalog give byte-identical files. See docs/world.md for the model. --out "
                       "must be new, empty or a world folder (world.json): its slices are replaced.")
    p.add_argument("--playlists", type=int, required=True, metavar="N", help="number of playlists")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    p.add_argument("--catalog", type=Path, metavar="FILE",
                   help="track catalog, Parquet or CSV in the Spotify Tracks schema (default: the shipped one)")
    p.add_argument("--jobs", type=int, default=1, help="slices written in parallel (default 1)")
    p.add_argument("--shape", choices=("catalog", "mpd"), default="catalog",
                   help="catalog: playlists over the catalog only (default); mpd: plus a synthetic long tail of "
                   "tracks without audio features, a chart of hits and themes, shaped like the real MPD")
    p.set_defaults(func=cmd_world)

    p = sub.add_parser("ingest", help="read MPD slices into a Parquet playlist store",
                       description="Stream every mpd.slice.*.json under MPD_DIR (or one slice file) into a "
                       "columnar store (playlists, playlist_tracks, tracks). A malformed slice stops the "
                       "ingest with the file, playlist and field named; the output is then left untouched. "
                       "--out must be new, empty or a store (store.json).")
    p.add_argument("mpd", type=path_or_uri, metavar="MPD_DIR",
                   help="directory of slices, or one slice file; with --engine spark also a URI (file:///…, "
                   "hdfs://…, s3a://…) that Spark reads there")
    p.add_argument("--out", required=True, type=path_or_uri, metavar="STORE_DIR",
                   help="store directory to write; with --engine spark also a URI (file:///…, hdfs://…, s3a://…), "
                   "written here and copied there whole")
    engine_options(p, "local (default): this process, slice by slice; spark: Spark's JSON reader and executors "
                   "(needs Java), the same store and the same errors (docs/scale.md, \"Past one machine\")")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("stats", help="dataset statistics next to the MPD's published ones",
                       description="Print statistics of MPD slices or a store, beside the numbers the Million "
                       "Playlist Dataset publishes in its stats.txt. Slices are streamed, one at a time.")
    p.add_argument("path", type=Path, metavar="MPD_DIR_OR_STORE")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_stats)

    p = sub.add_parser("challenge", help="split slices into train/, challenge_set.json and truth.json",
                       description="Hold out playlists in the ten official challenge categories. Writes "
                       "SPLIT_DIR/train/ (slices minus test playlists), challenge_set.json (official format), "
                       "truth.json ({pid: {category, tracks, artists}}), track_artists.json and split.json. "
                       "--out must be new, empty or a split, and apart from MPD_DIR.")
    p.add_argument("mpd", type=Path, metavar="MPD_DIR")
    p.add_argument("--out", required=True, type=Path, metavar="SPLIT_DIR")
    p.add_argument("--per-category", type=int, default=100, help="test playlists per category (default 100)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--jobs", type=int, default=1, help="slices read and written in parallel, one process each "
                   "(default 1; the same files for any number)")
    p.set_defaults(func=cmd_challenge)

    p = sub.add_parser("evaluate", help="score a submission CSV against truth.json",
                       description="R-precision (and the artist-credit variant), NDCG, clicks and recall@500, "
                       "overall (ALL) and per category. A malformed submission is scored as given and its "
                       "problems are reported on stderr. track_artists.json and challenge_set.json next to "
                       "the truth file are used when present (artist credit; seed check).")
    p.add_argument("submission", type=Path, metavar="SUBMISSION.csv")
    p.add_argument("--truth", required=True, type=Path, metavar="TRUTH.json")
    p.add_argument("--tracks", type=Path, metavar="TRACK_ARTISTS.json",
                   help="track URI → artist name map (default: track_artists.json beside the truth file)")
    p.add_argument("--challenge", type=Path, metavar="CHALLENGE.json",
                   help="challenge set, to flag recommended seeds (default: challenge_set.json beside the truth)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.add_argument("--strict", action="store_true", help="exit with status 1 when the submission is malformed")
    p.set_defaults(func=cmd_evaluate)


def cmd_world(args) -> int:
    import orjson

    from modules.atomic import check_output_folder
    from modules.cli.options import at_least
    from modules.world import write_world

    at_least(args.playlists, 1, "--playlists")
    at_least(args.jobs, 1, "--jobs")
    check_output_folder(args.out, WORLD_KIND)  # the world replaces its own slices, in place
    s = write_world(args.out, args.playlists, seed=args.seed, catalog=args.catalog, jobs=args.jobs, shape=args.shape)
    marker = {"format": WORLD_FORMAT, "playlists": args.playlists, "seed": args.seed, "shape": s["shape"],
              "catalog": str(args.catalog) if args.catalog else "shipped", "files": s["files"]}
    (args.out / WORLD_MARKER).write_bytes(orjson.dumps(marker, option=orjson.OPT_INDENT_2))
    print(f"world ({s['shape']}): {s['playlists']:,} playlists in {s['files']} slice files, {s['bytes'] / 1e6:.1f} MB, "
          f"{s['seconds']:.1f} s -> {args.out}")
    return 0


def cmd_ingest(args) -> int:
    from modules.spark.session import engine_and_master
    from modules.spark.storage import check_uri_engine
    from modules.store import ingest

    engine, master = engine_and_master(args.engine, args.spark, default="local")
    check_uri_engine("MPD_DIR", args.mpd, engine)
    check_uri_engine("--out", args.out, engine)
    if engine == "spark":
        from modules.spark.ingest import ingest_spark
        from modules.spark.session import session_for

        with session_for(master) as spark:
            s = ingest_spark(args.mpd, args.out, spark=spark)
    else:
        s = ingest(args.mpd, args.out)
    where = f" (spark on {master})" if engine == "spark" else ""
    print(f"ingest{where}: {s['playlists']:,} playlists, {s['tracks']:,} tracks, {s['unique_tracks']:,} unique tracks, "
          f"{s['unique_artists']:,} artists, {s['unique_albums']:,} albums in {s['seconds']:.2f} s "
          f"({s['mb_per_s']:.1f} MB/s of JSON) -> {args.out}")
    return 0


# Published in the MPD's stats.txt (recsys-challenge.spotify.com/readme).
MPD_PUBLISHED = {"playlists": 1_000_000, "tracks": 66_346_428, "unique_tracks": 2_262_292,
                 "unique_albums": 734_684, "unique_artists": 295_860, "unique_titles": 92_944,
                 "unique_normalized_titles": 17_381, "playlists_with_descriptions": 18_760,
                 "avg_playlist_length": 66.346428}


def cmd_stats(args) -> int:
    from modules.slice_stats import slice_stats
    from modules.store import MANIFEST, PlaylistStore

    # a store reads its tables; slices are streamed (bounded memory: the 1M-playlist MPD is 66 M entries)
    if (args.path / MANIFEST).exists():
        stats = PlaylistStore(args.path).stats()
    else:
        stats = slice_stats(args.path, show_progress=True)
    if args.json:
        print(json.dumps({"data": stats, "mpd_published": MPD_PUBLISHED}, indent=2))
        return 0
    print(f"{'statistic':32s} {'this data':>14s} {'MPD (stats.txt)':>16s}")
    for key, value in stats.items():
        if key == "top_titles":
            continue
        ref = MPD_PUBLISHED.get(key)
        fmt = (lambda v: f"{v:,.3f}") if isinstance(value, float) else (lambda v: f"{v:,}")
        print(f"{key:32s} {fmt(value):>14s} {(fmt(ref) if ref is not None else '-'):>16s}")
    print("top titles: " + ", ".join(f"{t} ({n})" for t, n in stats["top_titles"].items()))
    return 0


def cmd_challenge(args) -> int:
    from modules.challenge import split_mpd
    from modules.cli.options import at_least

    at_least(args.jobs, 1, "--jobs")
    s = split_mpd(args.mpd, args.out, per_category=args.per_category, seed=args.seed, jobs=args.jobs)
    print(f"challenge: {s['test_playlists']:,} test playlists ({args.per_category} per category), "
          f"{s['train_playlists']:,} training playlists -> {args.out}")
    return 0


def cmd_evaluate(args) -> int:
    from modules.challenge import read_track_artists, read_truth
    from modules.metrics import evaluate
    from modules.mpd import read_challenge, read_submission

    truth = read_truth(args.truth)
    tracks = args.tracks or args.truth.with_name("track_artists.json")
    artist_of = read_track_artists(tracks) if args.tracks or tracks.exists() else None
    if artist_of is None:
        print(f"warning: no {tracks.name}: the artist-credit R-precision equals plain R-precision",
              file=sys.stderr)
    challenge = args.challenge or args.truth.with_name("challenge_set.json")
    seeds = None
    if args.challenge or challenge.exists():
        seeds = {p["pid"]: [t["track_uri"] for t in p["tracks"]] for p in read_challenge(challenge)["playlists"]}
    sub = read_submission(args.submission)
    result = evaluate(sub.rows, truth, artist_of=artist_of, seeds=seeds, problems=sub.problems)
    summary = result.summary()
    if result.problems:
        print(f"warning: {args.submission} is malformed: {result.malformed_lines} playlist lines with problems, "
              f"{len(result.problems)} problems in all; scored as given. First ones:", file=sys.stderr)
        for p in result.problems[:10]:
            print(f"  - {p}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{'category':20s} {'n':>5s} {'R-prec':>8s} {'R-prec+a':>9s} {'NDCG':>8s} {'clicks':>7s} {'recall':>7s}")
        for cat, m in summary.items():
            print(f"{cat:20s} {m['count']:5d} {m['r_precision']:8.4f} {m['r_precision_artist']:9.4f} "
                  f"{m['ndcg']:8.4f} {m['clicks']:7.2f} {m['recall']:7.4f}")
    return 1 if args.strict and result.problems else 0
