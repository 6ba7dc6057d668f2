"""``bundle convert``: a bundle of the previous format (pickles) to the current one (arrays and JSON)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bundle", help="model bundle tools: convert a previous-format bundle (pickles) to arrays; "
                       "add the nearest-neighbour index",
                       description="A bundle holds no code (docs/bundle.md). Bundles of the previous format "
                       "(playlist-bundle/1) held two pickles, which run code when loaded; `bundle convert` rewrites "
                       "one whose source you trust.")
    bsub = p.add_subparsers(dest="bundle_command", metavar="<subcommand>", required=True)
    q = bsub.add_parser("convert", help="rewrite a playlist-bundle/1 bundle (pickles) as playlist-bundle/2",
                        description="Unpickle OLD_DIR's fusion.joblib and als.joblib (only with --trust-pickles: "
                        "unpickling runs any code the files hold), write them as arrays, Parquet and JSON, copy the "
                        "other parts, and check that the new bundle recommends exactly what the old one did.")
    q.add_argument("old", type=Path, metavar="OLD_DIR", help="a playlist-bundle/1 bundle")
    q.add_argument("--out", required=True, type=Path, metavar="NEW_DIR", help="the converted bundle (a new folder)")
    q.add_argument("--trust-pickles", action="store_true",
                   help="you trust OLD_DIR's source: its pickles may be loaded (required)")
    q.set_defaults(func=cmd_convert)
    from modules import ann

    q = bsub.add_parser("index", help="add the nearest-neighbour index of the two-tower and ALS vectors",
                        description="Build the index each part searches instead of scanning every track "
                        "(docs/serving.md; train builds it for catalogs of --min-rows tracks or more) and write it "
                        "into BUNDLE as two_tower/ann.npz and als/ann.npz. Deleting them restores the exact scan.")
    q.add_argument("bundle", type=Path, metavar="BUNDLE")
    q.add_argument("--min-rows", type=int, default=ann.MIN_ROWS,
                   help=f"index a part with this many tracks or more (default {ann.MIN_ROWS:,}; 0: always)")
    q.add_argument("--nlist", type=int, default=None,
                   help=f"clusters (default: rows / {ann.ROWS_PER_LIST} as a power of two)")
    q.add_argument("--nprobe", type=int, default=None, help="clusters scored per query (default: nlist / 32)")
    q.add_argument("--seed", type=int, default=0, help="seeds the k-means (default 0)")
    q.add_argument("--force", action="store_true", help="rebuild an index the bundle already has")
    q.set_defaults(func=cmd_index)


def cmd_convert(args) -> int:
    from modules.bundle_convert import convert_bundle

    rec = convert_bundle(args.old, args.out, trust_pickles=args.trust_pickles)
    print(f"bundle convert: {args.old} -> {args.out} ({rec.manifest['format']}; parts "
          f"{', '.join(rec.manifest['parts'])}); recommendations checked identical")
    return 0


def cmd_index(args) -> int:
    from modules.bundle_index import add_indexes

    done = add_indexes(args.bundle, min_rows=args.min_rows, nlist=args.nlist, nprobe=args.nprobe, seed=args.seed,
                       force=args.force)
    for part, what in done.items():
        print(f"bundle index: {args.bundle} {part}: {what}")
    return 0
