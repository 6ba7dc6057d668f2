"""Does a pool sized to ``k`` lose quality? The full pool against ``candidates_per_k`` rules, on held-out playlists.

    python -m benchmarks.pool_quality --model M --split SPLIT --ks 10,20,50,100 --rules 10:500,4:300

``SPLIT`` is a ``python -m modules challenge`` folder (``challenge_set.json``, ``truth.json``) whose test playlists
the bundle ``M`` never trained on. For each ``k`` every test playlist is answered with the full pool (the
reference) and with each rule ``PER_K:MIN`` (``HybridRecommender.candidates_per_k`` and ``min_candidates``), and
scored at ``k`` as ``modules.metrics.score_playlist`` scores a list: NDCG@k, R-precision (over the first
``min(|G|, k)``), recall@k. Per rule: the mean of each metric, the paired difference rule − full with its standard
error (playlists are the unit), how many of the top ``k`` change, the mean pool size, and the CPU time per
playlist. Results go to ``--out`` (JSON) and a table to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from modules.metrics import score_playlist, standard_error
from modules.recommender import Recommender

METRICS = ("ndcg", "r_precision", "recall")


def parse_rule(text: str) -> tuple[float | None, int]:
    """``"full"`` or ``"PER_K:MIN"`` → ``(candidates_per_k, min_candidates)``."""
    if text == "full":
        return None, 0
    per_k, _, floor = text.partition(":")
    return float(per_k), int(floor or 0)


def answers(rec: Recommender, playlists: list[dict], k: int, rule: tuple[float | None, int]):
    """The top ``k`` of every playlist under ``rule``, the mean pool size, and CPU ms per playlist."""
    h = rec.hybrid
    h.candidates_per_k, h.min_candidates = rule
    started = time.process_time()
    frames = rec.recommend_batch(playlists, k=k, explain=False)
    cpu = (time.process_time() - started) * 1000 / len(playlists)
    sample = playlists[:60]
    pool = float(np.mean([len(h.candidate_set([t["track_uri"] for t in p.get("tracks", [])], p.get("name"), k=k).uris)
                          for p in sample]))
    return [f["track_uri"].tolist() for f in frames], pool, cpu


def compare(full: np.ndarray, other: np.ndarray) -> dict[str, float]:
    d = other - full
    return {"full": float(full.mean()), "rule": float(other.mean()), "diff": float(d.mean()),
            "se": standard_error(d, single=float("nan"))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--split", required=True, type=Path, help="a challenge split: challenge_set.json, truth.json")
    ap.add_argument("--ks", default="10,50,100")
    ap.add_argument("--rules", default="10:500", help="PER_K:MIN rules, comma-separated (default: the default's)")
    ap.add_argument("--limit", type=int, help="only the first N test playlists (a smoke run)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    rules = [parse_rule(r) for r in args.rules.split(",")]
    rec = Recommender.load(args.model)
    challenge = json.loads((args.split / "challenge_set.json").read_text())
    truth = json.loads((args.split / "truth.json").read_text())
    playlists = [p for p in challenge["playlists"] if str(p["pid"]) in truth][: args.limit]
    result = {"command": "python -m benchmarks.pool_quality " + " ".join(sys.argv[1:]), "model": str(args.model),
              "split": str(args.split), "playlists": len(playlists),
              "load_average_start": round(os.getloadavg()[0], 1), "ks": {}}
    for k in [int(x) for x in args.ks.split(",")]:
        ref, ref_pool, ref_cpu = answers(rec, playlists, k, (None, 0))
        scores = {}
        ref_scores = {m: np.array([score_playlist(r, truth[str(p["pid"])]["tracks"])[m]
                                   for r, p in zip(ref, playlists, strict=True)]) for m in METRICS}
        row = {"full": {"pool": ref_pool, "cpu_ms": ref_cpu}}
        print(f"k={k}: full pool {ref_pool:.0f}, {ref_cpu:.2f} ms CPU/playlist", flush=True)
        for rule in rules:
            got, pool, cpu = answers(rec, playlists, k, rule)
            label = f"{rule[0]:g}:{rule[1]}"
            scores = {m: np.array([score_playlist(r, truth[str(p["pid"])]["tracks"])[m]
                                   for r, p in zip(got, playlists, strict=True)]) for m in METRICS}
            changed = [len(set(a) - set(b)) for a, b in zip(ref, got, strict=True)]
            row[label] = {"pool": pool, "cpu_ms": cpu, "changed_mean": float(np.mean(changed)),
                          "playlists_changed": int(sum(c > 0 for c in changed)),
                          **{m: compare(ref_scores[m], scores[m]) for m in METRICS}}
            cells = "  ".join(f"{m} {row[label][m]['rule']:.4f} ({row[label][m]['diff']:+.4f} ± "
                              f"{row[label][m]['se']:.4f})" for m in METRICS)
            print(f"  {label:>8}: pool {pool:5.0f}, {cpu:5.2f} ms, top-k changed {np.mean(changed):5.2f} "
                  f"({row[label]['playlists_changed']} playlists)  {cells}", flush=True)
        row["full"].update({m: float(ref_scores[m].mean()) for m in METRICS})
        result["ks"][str(k)] = row
    result["load_average_end"] = round(os.getloadavg()[0], 1)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
