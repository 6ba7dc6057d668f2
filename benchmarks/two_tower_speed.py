"""Two-tower speed: training wall time and throughput, SavedModel retrieval latency per playlist.

    python -m benchmarks.two_tower_speed --playlists 10000          # train with the default config, then time
    python -m benchmarks.two_tower_speed --playlists 10000 --skip-train   # only the latency part

Steps: the world and its challenge split are built as ``benchmarks/quality.py`` builds them (cached under
data/bench/); ``python -m modules train-two-tower`` trains on the training playlists with the default config
(wall time measured around the whole command: vocabularies, training with per-epoch validation, export);
then the exported ``saved_model/`` is loaded with plain ``tf.saved_model.load`` in this process and asked for
k = 500 tracks for each challenge playlist, one playlist per call, after a warm-up. Results are written to
benchmarks/results/two_tower_speed-<playlists>.json. Timings depend on the machine and on what else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.quality import prepare
from modules.bundle import Bundle

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--playlists", type=int, default=10000)
    ap.add_argument("--per-category", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--config", type=Path, help="config JSON passed to train-two-tower (default: none)")
    ap.add_argument("--skip-train", action="store_true", help="reuse the bundle of an earlier run")
    ap.add_argument("--calls", type=int, default=300, help="playlists timed (one call each)")
    args = ap.parse_args()

    base = prepare(args.playlists, args.per_category, args.seed)
    store = base / f"train-store-{args.per_category}"
    bundle = base / "two-tower-speed"
    out = ROOT / "benchmarks" / "results" / f"two_tower_speed-{args.playlists}.json"
    result = json.loads(out.read_text()) if out.exists() and args.skip_train else {}
    if not args.skip_train:
        cmd = [sys.executable, "-m", "modules", "train-two-tower", "--mpd", str(store), "--out", str(bundle),
               "--seed", str(args.seed), "--restart"]
        if args.config:
            cmd += ["--config", str(args.config)]
        print("$", " ".join(cmd), flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        curve = json.loads(Bundle(bundle).training_curve.read_text())
        store_meta = json.loads((store / "store.json").read_text())
        epochs = curve["epochs"]
        examples = sum(e["examples"] for e in epochs)
        train_s = sum(e["train_seconds"] for e in epochs)
        result = {
            "command": " ".join(cmd[1:]),
            "training_playlists": store_meta["playlists"], "training_entries": store_meta["tracks"],
            "wall_seconds": round(wall, 1), "epochs_run": len(epochs), "best_epoch": curve["best_epoch"],
            "examples": examples, "train_seconds": round(train_s, 1),
            "examples_per_s": round(examples / max(train_s, 1e-9), 1),
            "per_epoch": [{k: e[k] for k in ("epoch", "examples_per_s", "train_seconds", "seconds")}
                          | {"val_recall": e.get("validation", {}).get("recall")} for e in epochs],
            "stdout": proc.stdout.strip().splitlines()[-1:],
        }
        print(f"train: {wall:.0f} s wall, {len(epochs)} epochs, {result['examples_per_s']:,.0f} examples/s",
              flush=True)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import orjson
    import tensorflow as tf

    challenge = orjson.loads((base / f"split-{args.per_category}" / "challenge_set.json").read_bytes())
    playlists = challenge["playlists"][: args.calls]
    model = tf.saved_model.load(str(Bundle(bundle).saved_model))
    serve = model.signatures["serving_default"]

    def call(p):
        seeds = [t["track_uri"] for t in p["tracks"]] or [""]
        return serve(seed_track_uris=tf.constant([seeds]), title=tf.constant([p.get("name", "")]))

    for p in playlists[:20]:  # warm-up (graph tracing per input shape)
        call(p)
    times = []
    for p in playlists:
        t0 = time.perf_counter()
        res = call(p)
        res["track_uris"].numpy()
        times.append(1000 * (time.perf_counter() - t0))
    k = int(res["track_uris"].shape[1])
    t = np.array(times)
    result["latency_ms"] = {"k": k, "calls": len(t), "p50": round(float(np.percentile(t, 50)), 2),
                            "p99": round(float(np.percentile(t, 99)), 2), "mean": round(float(t.mean()), 2)}
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__,
                         "note": "shared 2-core machine; other jobs ran at the same time"}
    print(f"SavedModel latency per playlist (k={k}): p50 {result['latency_ms']['p50']} ms, "
          f"p99 {result['latency_ms']['p99']} ms", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
