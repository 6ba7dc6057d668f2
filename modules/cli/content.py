"""Content-model commands: ``content fit`` and ``content similar``."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from modules.atomic import FolderKind
from modules.errors import InputError
from modules.paths import MODELS_DIR

CONTENT_KIND = FolderKind("content model", "manifest.json", "content-model/")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("content", help="content model: fit it, find tracks that sound and read alike, explain",
                       description="The content model compares tracks by audio features (standardized) and by "
                       "text tags (artists, genres, words of the playlist titles they appear in). See "
                       "docs/content.md.")
    csub = p.add_subparsers(dest="content_command", metavar="<subcommand>", required=True)

    q = csub.add_parser("fit", help="fit the content model and save it to a folder",
                        description="Fit on a catalog (or a feature store) and the titles of training playlists; "
                        "write manifest.json, arrays.npz, text.npz and tokens.json to --out.")
    q.add_argument("--train", type=Path, metavar="MPD_DIR_OR_STORE",
                   help="training playlists (their titles become tags); omit for catalog tags only")
    src = q.add_mutually_exclusive_group()
    src.add_argument("--catalog", type=Path, metavar="FILE", help="catalog file (default: the shipped one)")
    src.add_argument("--features", type=Path, metavar="STORE.sqlite", help="read tracks from a feature store")
    q.add_argument("--out", type=Path, default=MODELS_DIR / "content", metavar="DIR",
                   help="model folder (default models/content)")
    q.add_argument("--params", default="{}", metavar="JSON",
                   help='ContentModel parameters, e.g. \'{"w_num": 0.5, "title_weight": 0.5}\'')
    q.set_defaults(func=cmd_fit)

    q = csub.add_parser("similar", help="tracks closest to some seed tracks and/or a title, with reasons",
                        description="Rank every track of the model by similarity to the playlist made of the "
                        "seeds (and title), and say why in listener words.")
    q.add_argument("seeds", nargs="*", metavar="SEED_URI")
    q.add_argument("--model", type=Path, default=MODELS_DIR / "content", metavar="DIR")
    q.add_argument("--title", help="playlist title (its words are matched against playlist-title tags)")
    q.add_argument("-k", type=int, default=10, help="number of tracks (default 10)")
    q.add_argument("--weight", default="", metavar="FEATURE=W,…",
                   help="listener emphasis, e.g. energy=3,acousticness=0 ('energy matters more')")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_similar)


def parse_weights(text: str) -> dict[str, float] | None:
    """``"energy=3,valence=0.5"`` → ``{"energy": 3.0, "valence": 0.5}``."""
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, sep, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise InputError(f"--weight entries must look like feature=number (got {part!r}).")
    return out or None


def cmd_fit(args) -> int:
    import time

    from modules.atomic import check_output_folder
    from modules.cli.options import construct, json_object
    from modules.content import ContentModel
    from modules.store import open_store

    params = json_object(args.params)
    check_output_folder(args.out, CONTENT_KIND, inputs=[args.train, args.catalog, args.features])
    model = construct(ContentModel, params)
    catalog = args.catalog
    if args.features is not None:
        from modules.features import FeatureStore

        catalog = FeatureStore(args.features)
    store = open_store(args.train, show_progress=True) if args.train is not None else None
    t0 = time.perf_counter()
    model.fit(catalog, store)
    model.save(args.out)
    print(f"content fit: {len(model.uris_):,} tracks ({int(model.has_num_.sum()):,} with audio features), "
          f"{len(model.vocab_):,} tags in {time.perf_counter() - t0:.1f} s -> {args.out}")
    return 0


def cmd_similar(args) -> int:
    from modules.content import ContentModel

    if not args.seeds and not args.title:
        raise InputError("give seed track URIs and/or --title.")
    model = ContentModel.load(args.model)
    weights = parse_weights(args.weight)
    unknown = [s for s in args.seeds if s not in model.index_]
    uris, scores = model.nearest(args.seeds, args.k, weights, title=args.title)
    if not uris:
        raise InputError("none of the seeds is in the model and the title has no known words; "
                         f"unknown seeds: {unknown[:5]}")
    reasons = model.explanations(args.seeds, uris, weights, title=args.title)
    names = [model.names_[model.index_[u]] for u in uris]
    if args.json:
        rows = [{"track_uri": u, "name": n, "score": float(s),
                 **{k: _clean(v) for k, v in r.items() if k != "track_uri"}}
                for u, n, s, r in zip(uris, names, scores, reasons, strict=True)]
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    if unknown:
        print(f"({len(unknown)} seed(s) not in the model were ignored)")
    for i, (u, n, s, r) in enumerate(zip(uris, names, scores, reasons, strict=True), 1):
        print(f"{i:3d}. {s:.3f}  {n or u}\n       {r['reason']}")
    return 0


def _clean(v):
    return None if isinstance(v, float) and math.isnan(v) else v
