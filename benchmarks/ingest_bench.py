"""Ingest throughput and memory against the number of slices.

    python -m benchmarks.ingest_bench --playlists 100000 --slices 10,25,50,100

Generates (once, cached under data/bench/) a world of ``--playlists`` playlists, then ingests the first k slices
for each k in a fresh process and reports, per run: JSON MB, wall seconds, CPU seconds of the ingest process,
MB/s per core (JSON bytes / CPU seconds: robust when other jobs share the machine), and peak RSS. The memory
goal is that peak RSS stays flat as the number of slices grows (only the unique-track table grows, bounded by
the catalog). Results go to benchmarks/results/ingest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
CHILD = "import sys; from modules.store import ingest; ingest(sys.argv[1], sys.argv[2], show_progress=False)"


def world(playlists: int, seed: int) -> Path:
    out = ROOT / "data" / "bench" / f"world-{playlists}-s{seed}" / "mpd"
    expected = (playlists + 999) // 1000
    if len(list(out.glob("mpd.slice.*.json"))) != expected:
        subprocess.run([PY, "-m", "modules", "-q", "world", "--playlists", str(playlists), "--seed", str(seed),
                        "--out", str(out), "--jobs", "2"], cwd=ROOT, check=True)
    return out


def ingest_first(src: Path, k: int) -> dict:
    from modules.mpd import find_slices

    files = find_slices(src)[:k]
    with tempfile.TemporaryDirectory(dir=ROOT / "data" / "bench") as tmp:
        sub = Path(tmp) / "mpd"
        sub.mkdir()
        for f in files:
            (sub / f.name).symlink_to(f)
        t0 = time.perf_counter()
        proc = subprocess.Popen([PY, "-c", CHILD, str(sub), str(Path(tmp) / "store")], cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if status != 0:
            raise SystemExit(f"ingest of {k} slices failed (status {status})")
        store = json.loads((Path(tmp) / "store" / "store.json").read_text())
    mb = sum(f.stat().st_size for f in files) / 1e6
    cpu = usage.ru_utime + usage.ru_stime
    return {"slices": k, "playlists": store["playlists"], "json_mb": round(mb, 1), "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2), "mb_per_s_wall": round(mb / wall, 1), "mb_per_cpu_s": round(mb / cpu, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "unique_tracks": store["unique_tracks"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--playlists", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--slices", default="10,25,50,100")
    args = ap.parse_args()
    src = world(args.playlists, args.seed)
    runs = []
    print(f"{'slices':>6} {'playlists':>9} {'JSON MB':>8} {'wall s':>7} {'cpu s':>6} {'MB/s':>6} {'MB/cpu-s':>8} "
          f"{'peak RSS MB':>11}")
    for k in [int(x) for x in args.slices.split(",")]:
        r = ingest_first(src, k)
        runs.append(r)
        print(f"{r['slices']:6d} {r['playlists']:9,d} {r['json_mb']:8.1f} {r['wall_s']:7.2f} {r['cpu_s']:6.2f} "
              f"{r['mb_per_s_wall']:6.1f} {r['mb_per_cpu_s']:8.1f} {r['peak_rss_mb']:11.1f}", flush=True)
    out = ROOT / "benchmarks" / "results" / "ingest.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": "python -m benchmarks.ingest_bench " + " ".join(sys.argv[1:]),
                               "machine": f"{platform.machine()}, {os.cpu_count()} cores", "runs": runs}, indent=2))
    shutil.rmtree(ROOT / "data" / "bench" / "tmp", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
