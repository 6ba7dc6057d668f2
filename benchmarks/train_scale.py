"""Wall time and resident memory of `python -m modules train` on a large generated world.

    python -m benchmarks.train_scale --playlists 100000 --epochs 2 --label HEAD

Generates the world (``python -m modules world``, skipped when the slices exist), runs ``train`` on all of it as
a child process and samples the child's resident memory (``/proc/<pid>/status``, Linux) every second. Each
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
import re
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

from modules.bundle import Bundle

HERE = Path(__file__).resolve().parent
STAGE = re.compile(r"INFO (modules\.[\w.]+): (.*)")
EPOCH = re.compile(r"^epoch (\d+): loss")


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


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
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, text=True,
                             errors="replace")
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            r = rss_mb(child.pid)
            if r is not None:
                samples.append((round(time.perf_counter() - t0, 1), round(r)))
            done.wait(1.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    events = []
    tail: list[str] = []
    for raw in child.stderr:
        for line in raw.split("\r"):
            line = line.strip()
            m = STAGE.search(line)
            text = m.group(2) if m else line if EPOCH.search(line) else None
            if text:
                events.append({"s": round(time.perf_counter() - t0, 1), "rss_mb": round(rss_mb(child.pid) or 0),
                               "log": text[:160]})
                print(f"{events[-1]['s']:8.1f} s {events[-1]['rss_mb']:7d} MB  {text[:110]}", flush=True)
        tail = (tail + [raw.rstrip()])[-20:]
    code = child.wait()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    if code != 0:
        print("\n".join(tail), file=sys.stderr)
        print(f"train failed with exit code {code}", file=sys.stderr)
        return code
    peak = max((r for _, r in samples), default=0)
    at = next(s for s, r in samples if r == peak) if samples else None
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
