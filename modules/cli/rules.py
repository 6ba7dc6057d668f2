"""``rules``: mine association rules (track co-occurrence) from playlists into a Parquet file."""

from __future__ import annotations

import argparse
from contextlib import ExitStack
from pathlib import Path

from modules.spark.session import path_or_uri


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rules", help="mine association rules ({A, B} -> C with support, confidence, lift) from playlists",
        description="Playlists are transactions, tracks are items. Writes one row per rule: antecedents and "
        "consequents (lists of track URIs), their counts and supports, support, confidence, lift, leverage and "
        "conviction (mlxtend's definitions), sorted by lift (ties: confidence, support, then URIs), then keeps "
        "those with evidence (--min-count, --max-consequents; --smoothing for scoring). The engines give the same "
        "rules; see docs/rules.md (and docs/scale.md, \"Past one machine\", for --engine spark).")
    p.add_argument("--mpd", required=True, type=path_or_uri, metavar="MPD_DIR_OR_STORE",
                   help="playlists: a directory of mpd.slice.*.json files, one slice, or a store (ingest); with "
                   "--engine spark also a store's URI that Spark reads (file:///…, hdfs://…, s3a://…)")
    p.add_argument("--out", required=True, type=Path, metavar="RULES.parquet", help="Parquet file to write")
    p.add_argument("--engine", choices=("sparse", "mlxtend", "spark"),
                   help="sparse (default): exact counts with scipy.sparse, max-len 2 or 3, scales to 1M "
                   "playlists; mlxtend: fpgrowth + association_rules, any max-len, small data only (it checks "
                   "its memory need first and refuses when it would not fit); spark: the sparse engine's counts "
                   "by Spark SQL (needs Java), max-len 2 or 3, for data past one machine")
    p.add_argument("--spark", metavar="MASTER",
                   help="the spark engine's master (implies --engine spark): local[*] (default: every core here), "
                   "local[N], or spark://HOST:PORT")
    p.add_argument("--min-support", type=float, default=0.005, metavar="S",
                   help="keep itemsets in at least this share of playlists, in (0, 1] (default 0.005)")
    p.add_argument("--min-confidence", type=float, default=0.1, metavar="C",
                   help="keep rules with at least this confidence, in (0, 1] (default 0.1)")
    p.add_argument("--max-len", type=int, default=3, metavar="L",
                   help="largest itemset, antecedent plus consequent (default 3: A -> C and {A, B} -> C)")
    p.add_argument("--min-count", type=int, default=1, metavar="N",
                   help="evidence filter: keep rules whose tracks share at least N playlists (default 1: all; 2 "
                   "drops the rules seen in one playlist, most of them on real playlists)")
    p.add_argument("--max-consequents", type=int, metavar="N",
                   help="evidence filter: keep each antecedent's N rules with the most playlists (ties: the higher "
                   "lift, then URI order); default: no cap")
    p.add_argument("--smoothing", type=float, default=0.0, metavar="M",
                   help="evidence filter: score rules by count / (antecedent count + M) instead of the confidence "
                   "(default 0); recorded in the file's metadata, which RuleModel.load reads, so 1 of 1 can rank "
                   "below 20 of 25")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="sparse engine: threads for the sparse products (default 1)")
    p.add_argument("--chunk-pairs", type=int, metavar="N",
                   help="sparse engine: count pairs in chunks of playlists of N pair occurrences each, spilled to "
                   "disk and merged, so the pair table is never in memory whole (about 30 bytes per occurrence "
                   "per chunk); 0: in memory; default: auto (chunks of 16777216 when the frequent pairs could "
                   "exceed 16777216); the rules are the same")
    p.add_argument("--spill-dir", type=Path, metavar="DIR",
                   help="sparse engine: where chunked pair counting writes its temporary files (default: the "
                   "system's temporary directory; about 6 bytes per distinct pair of each chunk)")
    p.add_argument("--memory-budget", type=float, metavar="GB",
                   help="mlxtend engine: refuse when the estimated need exceeds this many GB "
                   "(default: 80%% of the memory available now)")
    p.set_defaults(func=cmd_rules)


def cmd_rules(args) -> int:
    from modules.atomic import check_output_file
    from modules.errors import InputError
    from modules.rules import apply_evidence, check_evidence, check_params, mine_rules
    from modules.rules.mining import check_chunk_pairs
    from modules.spark.session import engine_and_master
    from modules.store import open_store

    engine, master = engine_and_master(args.engine, args.spark, default="sparse")
    check_params(args.min_support, args.min_confidence, args.max_len, engine)  # before any slow reading
    evidence = check_evidence(args.min_count, args.max_consequents, args.smoothing)
    check_chunk_pairs(args.chunk_pairs)
    if args.spill_dir is not None and not args.spill_dir.is_dir():
        raise InputError(f"--spill-dir {args.spill_dir} is not a directory; give an existing folder with room "
                         "for the partial pair counts.")
    if args.memory_budget is not None and args.memory_budget <= 0:
        raise InputError(f"--memory-budget must be a positive number of GB (got {args.memory_budget}).")
    uri = isinstance(args.mpd, str)  # a URI (path_or_uri): Spark reads it where it is
    if uri and engine != "spark":
        raise InputError(f"--mpd {args.mpd} is a URI, which only Spark reads: add --engine spark (or --spark "
                         "MASTER), or give a local path.")
    check_output_file(args.out, inputs=[] if uri else [args.mpd], make_parent=True)
    budget = args.memory_budget * 1e9 if args.memory_budget is not None else None
    with ExitStack() as stack:
        spark = None
        if engine == "spark":  # slices are ingested on Spark too
            from modules.spark.ingest import open_store_spark
            from modules.spark.session import session_for

            spark = stack.enter_context(session_for(master))
            store = args.mpd if uri else open_store_spark(args.mpd, spark)
        else:
            store = open_store(args.mpd, show_progress=True)
        rules = mine_rules(store, engine=engine, min_support=args.min_support, min_confidence=args.min_confidence,
                           max_len=args.max_len, memory_budget=budget, n_jobs=args.jobs, show_progress=True,
                           spark=spark, chunk_pairs=args.chunk_pairs, spill_dir=args.spill_dir)
    mined = len(rules)
    rules = apply_evidence(rules, evidence)  # after mining: both engines give the same filtered table
    rules.write(args.out)
    m = rules.meta
    where = f" on {master}" if spark is not None else ""
    print(f"rules ({engine}{where}): {len(rules):,} rules from {m['n_playlists']:,} playlists "
          f"(min support {args.min_support:g}, min confidence {args.min_confidence:g}, max len {args.max_len}; "
          f"evidence {evidence.label()}: {mined:,} mined) in {m['seconds']:.1f} s -> {args.out}")
    return 0

