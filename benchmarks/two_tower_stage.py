"""Peak memory and throughput of the two-tower stage alone: ``python -m modules train-two-tower`` on a store.

    python -m benchmarks.two_tower_stage /work/bench/mpd-30000-s0/split-pc30/store --epochs 1 --label HEAD
    python -m benchmarks.two_tower_stage STORE --epochs 1 --timeout 1200 --label HEAD   # a partial point
    python -m benchmarks.two_tower_stage STORE --epochs 1 --config '{"examples_per_track": 0.01}'  # a share

Runs the command as a child (``mpd_scale.run_child``: the exact peak resident memory from ``os.wait4``, the
memory at each of its log lines) and appends the point to benchmarks/results/two-tower-stage.json: peak, wall
time, each epoch's examples/s from the log, the load average before and after. ``--timeout`` kills the child
after that many seconds (the point is then ``partial``: its peak is that of the steps it took). To measure
another commit, run this file from that checkout (``PYTHONPATH=OLD python -m benchmarks.two_tower_stage``): the
child runs the ``modules`` found first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.mpd_scale import run_child
from benchmarks.results_file import append_run

HERE = Path(__file__).resolve().parent
EPOCH_LINE = re.compile(r"epoch (\d+): loss ([\d.]+), (\d+) examples/s(?:, validation recall@500 ([\d.]+))?")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store", type=Path, help="training playlists (a store or MPD slices)")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--timeout", type=float, help="kill the stage after this many seconds (a partial point)")
    ap.add_argument("--label", default="", help="what is measured, e.g. the commit")
    ap.add_argument("--out", type=Path, help="bundle folder (default: a temporary one, removed after)")
    ap.add_argument("--config", metavar="JSON", help="TwoTowerConfig fields, e.g. '{\"examples_per_track\": 0.01}' "
                    "for a measured share of an epoch over the full vocabulary (memory is that of a whole epoch; "
                    "time scales with the examples)")
    args = ap.parse_args(argv)
    if args.config:
        try:
            config = json.loads(args.config)
        except json.JSONDecodeError as err:
            ap.error(f"--config is not JSON: {err}")
        if not isinstance(config, dict):
            ap.error("--config takes a JSON object of TwoTowerConfig fields")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] or None).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="two-tower-stage-") as tmp:
        out = args.out or Path(tmp) / "bundle"
        cmd = [sys.executable, "-m", "modules", "train-two-tower", "--mpd", str(args.store), "--out", str(out),
               "--epochs", str(args.epochs), "--seed", "0", "--restart"]
        if args.config:
            (Path(tmp) / "config.json").write_text(args.config)
            cmd += ["--config", str(Path(tmp) / "config.json")]
        load_before = os.getloadavg()
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        r = run_child(cmd, timeout=args.timeout, log_file=Path(tmp) / "stage.log")
        load_after = os.getloadavg()
    epochs = []
    for e in r["events"]:
        m = EPOCH_LINE.search(e["log"])
        if m and e["logger"].startswith("modules."):
            epochs.append({"epoch": int(m.group(1)), "loss": float(m.group(2)), "examples_per_s": int(m.group(3)),
                           "validation_recall": float(m.group(4)) if m.group(4) else None,
                           "rss_mib": e["rss_mib"]})
    point = {"label": args.label, "commit": commit, "started": started, "store": str(args.store),
             "epochs_asked": args.epochs, "config": json.loads(args.config) if args.config else None,
             "timeout": args.timeout, "command": r["command"],
             "wall_seconds": r["wall_seconds"], "peak_rss_mib": r["peak_rss_mib"], "partial": r["partial"],
             "exit_code": r["exit_code"], "epochs": epochs,
             "load_before": [round(x, 1) for x in load_before], "load_after": [round(x, 1) for x in load_after],
             "timeline": [{k: e[k] for k in ("s", "rss_mib", "log")} for e in r["events"]
                          if e["logger"].startswith("modules.")],
             "samples": r["samples"][::5]}  # (seconds, MiB) every 5 s
    append_run(HERE / "results" / "two-tower-stage.json", point)
    print({k: point[k] for k in ("label", "commit", "peak_rss_mib", "wall_seconds", "partial", "exit_code",
                                 "epochs", "load_before", "load_after")})
    return 0 if r["exit_code"] == 0 or r["partial"] else 1


if __name__ == "__main__":
    sys.exit(main())
