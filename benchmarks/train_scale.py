"""Wall time and resident memory of `python -m modules train` on a large generated world.

    python -m benchmarks.train_scale --playlists 100000 --epochs 2 --label HEAD

Generates the world (``python -m modules world``, skipped when the slices exist), runs ``train`` on all of it as
a child process (``benchmarks.mpd_scale.run_child``; its stderr is kept in ``<data>/logs/``) and samples the
child's resident memory (``/proc/<pid>/status``, Linux) every second; the peak is exact (``ru_maxrss``). Each
log line the child writes is stamped with the elapsed time and the memory at that moment, so the peak can be
put on a stage (ingest, two-tower epochs, rules, content, ALS, fusion). ``--epochs`` bounds the two-tower (the
default config trains until early stopping); ``--params`` is passed to ``train --params`` (e.g. the two-tower's
optimizer). Run the file from a checkout of another commit to compare
(``cd OLD && python /path/to/benchmarks/train_scale.py …``: it measures the ``modules`` of the current
directory). Results are appended to benchmarks/results/train-scale.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

from modules.bundle import Bundle

if __package__:
    from benchmarks.mpd_scale import run_child
else:  # run as a file from another checkout (above): Python put this file's folder first on the path
    from mpd_scale import run_child

HERE = Path(__file__).resolve().parent


def _stage_or_epoch(event: dict) -> bool:
    """A log line of a ``modules`` logger, or a two-tower epoch line: the timeline this benchmark records."""
    return event["logger"].startswith("modules.") or not event["logger"]


def _echo(event: dict) -> None:
    if _stage_or_epoch(event):
        print(f"{event['s']:8.1f} s {event['rss_mib']:7d} MB  {event['log'][:110]}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--playlists", type=int, default=100000)
    ap.add_argument("--epochs", type=int, default=2, help="two-tower epochs (0: the config's, early stopping)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=None, help="folder for the world and the bundle "
                    "(default data/bench/world-<N>-s<seed>)")
    ap.add_argument("--catalog", type=Path, default=None,
                    help="track catalog for the world and the content features (default: the shipped one); "
                    "`python -m benchmarks.hybrid_speed catalog --tracks N` makes larger ones")
    ap.add_argument("--params", default=None, metavar="JSON",
                    help='HybridRecommender parameters passed to `train --params`, e.g. '
                    '\'{"two_tower": {"optimizer": "lazy_adam"}}\'')
    ap.add_argument("--label", default="")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "train-scale.json")
    args = ap.parse_args()
    base = args.data or Path("data/bench") / f"world-{args.playlists}-s{args.seed}"
    mpd = base / "mpd"
    env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "PYTHONUNBUFFERED": "1"}
    if not (mpd.exists() and len(list(mpd.glob("mpd.slice.*.json"))) * 1000 >= args.playlists):
        subprocess.run([sys.executable, "-m", "modules", "world", "--playlists", str(args.playlists), "--seed",
                        str(args.seed), "--out", str(mpd), "--jobs", "2"]
                       + (["--catalog", str(args.catalog)] if args.catalog else []), check=True, env=env)
    tag = "-" + hashlib.sha256(args.params.encode()).hexdigest()[:8] if args.params else ""
    bundle = base / f"bundle-scale-e{args.epochs}{tag}"
    cmd = [sys.executable, "-m", "modules", "train", "--mpd", str(mpd), "--out", str(bundle), "--seed",
           str(args.seed)] + (["--epochs", str(args.epochs)] if args.epochs else []) \
        + (["--features", str(args.catalog)] if args.catalog else []) \
        + (["--params", args.params] if args.params else [])
    run = run_child(cmd, timeout=None, log_file=base / "logs" / f"train-{bundle.name}.log", echo=_echo)
    if run["exit_code"] != 0:
        print("\n".join(run["tail"]), file=sys.stderr)
        print(f"train failed with exit code {run['exit_code']}", file=sys.stderr)
        return run["exit_code"]
    wall, peak, samples = run["wall_seconds"], run["peak_rss_mib"], run["samples"]
    top = max((m for _, m in samples), default=None)
    at = next(s for s, m in samples if m == top) if samples else None  # when the sampled peak was seen
    events = [{"s": e["s"], "rss_mb": e["rss_mib"], "log": e["log"]} for e in run["events"] if _stage_or_epoch(e)]
    manifest = Bundle(bundle).read_manifest()
    curve = json.loads(Bundle(bundle).training_curve.read_text())["epochs"]
    result = {"label": args.label, "command": shlex.join(["python", "-m", "benchmarks.train_scale", *sys.argv[1:]]),
              "train_command": shlex.join(["python", *cmd[1:]]),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "playlists": manifest["data"]["playlists"], "tracks": manifest["data"]["tracks"],
              "wall_seconds": round(wall, 1), "peak_rss_mb": peak, "peak_at_seconds": at,
              "two_tower_epochs": [{**{k: r[k] for k in ("epoch", "examples", "train_seconds", "seconds")},
                                    "validation_ndcg": r.get("validation", {}).get("ndcg")} for r in curve],
              "fusion": manifest.get("fusion"), "validation_ndcg": manifest["validation"]["blend"]["official"]["ndcg"],
              "events": events, "rss_every_10s": samples[::10]}
    runs = json.loads(args.out.read_text()) if args.out.exists() else []
    runs.append(result)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=1))
    print(f"{result['playlists']} playlists: {wall:.0f} s, peak resident memory {peak} MB at {at} s "
          f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
