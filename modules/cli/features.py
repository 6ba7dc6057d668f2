"""Feature-store commands: ``features import|get|stats|fetch|search|map``."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from modules.errors import InputError
from modules.paths import DATA_DIR

# Inside data/cache/ (git-ignored): the store is derived data, rebuilt by `features import`.
DEFAULT_STORE = DATA_DIR / "cache" / "features.sqlite"
DEFAULT_MAP = DATA_DIR / "cache" / "feature_map.parquet"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="song feature store: import a catalog, look tracks up, fetch art, map",
                       description="The song feature store (one SQLite file in WAL mode, keyed by track URI): "
                       "audio features, genres, popularity, names, album art. See docs/content.md.")
    fsub = p.add_subparsers(dest="features_command", metavar="<subcommand>", required=True)

    q = fsub.add_parser("import", help="bulk-load a track catalog (CSV or Parquet) into the store",
                        description="Upsert every track of CATALOG (Spotify Tracks schema; other schemas via "
                        "--column-map) in one transaction. Idempotent: a rerun changes nothing. If the import "
                        "is killed, the store keeps its previous content; rerun the command to complete it.")
    q.add_argument("catalog", nargs="?", type=Path, metavar="CATALOG",
                   help="Parquet or CSV file of tracks (default: the shipped data/spotify_tracks catalog)")
    q.add_argument("--store", type=Path, default=DEFAULT_STORE, metavar="PATH",
                   help="feature store file, created if missing (default data/cache/features.sqlite)")
    q.add_argument("--column-map", default="", metavar="THEIRS=OURS,…",
                   help="rename columns first, e.g. id=track_id,artist=artists,genre=track_genre")
    q.add_argument("--source", help="label stored with each row (default catalog:<file name>)")
    q.set_defaults(func=cmd_import)

    q = fsub.add_parser("get", help="print stored rows for track URIs",
                        description="Print the stored row of each URI, in the order given; unknown URIs are "
                        "reported as not found (exit status 0 either way; --json has a 'found' field).")
    q.add_argument("uris", nargs="+", metavar="URI")
    q.add_argument("--store", type=Path, default=DEFAULT_STORE, metavar="PATH")
    q.add_argument("--json", action="store_true", help="print a JSON list of rows")
    q.set_defaults(func=cmd_get)

    q = fsub.add_parser("stats", help="row counts of the store (total, with audio features, with art, sources)")
    q.add_argument("--store", type=Path, default=DEFAULT_STORE, metavar="PATH")
    q.set_defaults(func=cmd_stats)

    q = fsub.add_parser("fetch", help="fetch names and album art from Spotify into the store (50 per call)",
                        description="Ask Spotify's /v1/tracks for URIs whose cached metadata is missing or "
                        "older than the TTL. Without credentials (SPOTIFY_CLIENT_ID/SECRET in the environment, "
                        ".env or .streamlit/secrets.toml) or network, prints cached or placeholder data.")
    q.add_argument("uris", nargs="*", metavar="URI")
    q.add_argument("--store", type=Path, default=DEFAULT_STORE, metavar="PATH")
    q.add_argument("--top", type=int, default=0, metavar="N", help="also fetch the N most popular stored tracks")
    q.add_argument("--refresh", action="store_true", help="ignore the TTL and ask again")
    q.add_argument("--audio-features", action="store_true",
                   help="also try Spotify's Audio Features endpoint (closed to new apps since 2024-11-27)")
    q.set_defaults(func=cmd_fetch)

    q = fsub.add_parser("search", help="search tracks (Spotify when online, else the store)")
    q.add_argument("query", nargs="+")
    q.add_argument("--store", type=Path, default=DEFAULT_STORE, metavar="PATH")
    q.add_argument("--limit", type=int, default=10)
    q.add_argument("--offline", action="store_true", help="search the store only, never Spotify")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_search)

    q = fsub.add_parser("map", help="2-D map (PCA) and KMeans clusters of the catalog's audio features",
                        description="Standardize the audio features, cluster them with KMeans and project them "
                        "on their first two principal components; write one row per track (x, y, cluster, "
                        "cluster label, names, genre, popularity) as Parquet for the app's Explore page.")
    q.add_argument("--store", type=Path, default=None, metavar="PATH",
                   help="read features from this store (default: the shipped catalog file)")
    q.add_argument("--catalog", type=Path, default=None, metavar="FILE", help="read features from a catalog file")
    q.add_argument("--out", type=Path, default=DEFAULT_MAP, metavar="FILE.parquet",
                   help="output file (default data/cache/feature_map.parquet)")
    q.add_argument("--clusters", type=int, default=12, help="number of KMeans clusters (default 12)")
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.set_defaults(func=cmd_map)


def parse_column_map(text: str) -> dict[str, str]:
    """``"a=b,c=d"`` → ``{"a": "b", "c": "d"}``; a clear error for anything else."""
    out: dict[str, str] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        theirs, sep, ours = part.partition("=")
        if not sep or not theirs.strip() or not ours.strip():
            raise InputError(f"--column-map entries must look like their_column=our_column (got {part!r}).")
        out[theirs.strip()] = ours.strip()
    return out


def cmd_import(args) -> int:
    from modules.features import FeatureStore

    store = FeatureStore(args.store, create=True)
    s = store.import_catalog(args.catalog, column_map=parse_column_map(args.column_map), source=args.source,
                             show_progress=True)
    print(f"features import: {s['rows']:,} tracks ({s['inserted']:,} new, {s['updated']:,} updated, "
          f"{s['unchanged']:,} unchanged) in {s['seconds']:.2f} s; {s['total']:,} tracks in {args.store}")
    return 0


def _jsonable(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}


def cmd_get(args) -> int:
    from modules.features import FeatureStore

    frame = FeatureStore(args.store).get_many(args.uris)
    rows = [_jsonable(r) for r in frame.to_dict("records")]
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for r in rows:
        if not r["found"]:
            print(f"{r['track_uri']}: not in the store")
            continue
        print(f"{r['track_uri']}: {r['track_name']} — {r['artists']} ({r['album_name']})")
        for k, v in r.items():
            if k not in ("track_uri", "found", "track_name", "artists", "album_name") and v not in (None, []):
                print(f"  {k:18s} {', '.join(v) if isinstance(v, list) else v}")
    return 0


def cmd_stats(args) -> int:
    from modules.features import FeatureStore

    s = FeatureStore(args.store).stats()
    print(f"{args.store}: {s['tracks']:,} tracks, {s['with_audio_features']:,} with audio features, "
          f"{s['with_album_art']:,} with album art, {s['bytes'] / 1e6:.1f} MB")
    for src, n in s["sources"].items():
        print(f"  {src:40s} {n:,}")
    return 0


def cmd_fetch(args) -> int:
    from modules.features import FeatureStore
    from modules.spotify import SpotifyClient, SpotifyConfig

    store = FeatureStore(args.store)
    uris = list(args.uris)
    if args.top:
        top = store.read_all(["popularity"]).sort_values(["popularity", "track_uri"], ascending=[False, True])
        uris += top["track_uri"].head(args.top).tolist()
    if not uris:
        raise InputError("give track URIs or --top N.")
    config = SpotifyConfig.from_env(audio_features=True if args.audio_features else None)
    client = SpotifyClient(store, config=config)
    frame = client.tracks(uris, refresh=args.refresh)
    if args.audio_features:
        client.audio_features(uris)
    counts = frame["source"].value_counts().to_dict()
    status = client.status()
    print(f"features fetch: {len(frame):,} tracks: " + ", ".join(f"{n:,} {s}" for s, n in sorted(counts.items()))
          + f"; Spotify {'online' if status['online'] else 'offline (' + str(status['reason']) + ')'}")
    return 0


def cmd_search(args) -> int:
    from modules.features import FeatureStore
    from modules.spotify import SpotifyClient

    client = SpotifyClient(FeatureStore(args.store), credentials=None if args.offline else "auto")
    frame = client.search(" ".join(args.query), limit=args.limit)
    if args.json:
        cols = ["track_uri", "track_name", "artists", "album_name", "popularity", "album_art_url", "source"]
        print(json.dumps([_jsonable(r) for r in frame[cols].to_dict("records")], indent=2, ensure_ascii=False))
        return 0
    for r in frame.to_dict("records"):
        print(f"{r['track_uri']}  {r['track_name']} — {r['artists']}  ({r['source']})")
    if frame.empty:
        print("no tracks found")
    return 0


def cmd_map(args) -> int:
    from modules.atomic import check_output_file
    from modules.content import write_feature_map

    check_output_file(args.out, inputs=[args.store, args.catalog], make_parent=True)
    s = write_feature_map(args.out, store=args.store, catalog=args.catalog, n_clusters=args.clusters,
                          seed=args.seed)
    print(f"features map: {s['tracks']:,} tracks, {s['clusters']} clusters, PCA explains "
          f"{100 * s['explained_variance']:.1f}% of the variance in 2-D ({s['seconds']:.1f} s) -> {args.out}")
    return 0
