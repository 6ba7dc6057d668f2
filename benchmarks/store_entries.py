"""What the store's entries (``PlaylistStore.playlist_tracks``) and the code reading them cost in memory and time.

    python -m benchmarks.store_entries STORE load                  # bytes an entry by column, load RSS and time
    python -m benchmarks.store_entries STORE interactions          # a consumer's peak, in a process of its own
    cd OLD && python -m benchmarks.store_entries STORE load        # another checkout (this file copied into it)

One measurement per process (the peak resident memory of a process is its own, ``VmHWM``). ``load``: seconds and
CPU seconds of the first ``store.playlist_tracks``, the resident memory it added (as returned; and after a
garbage collection and Arrow's pool releasing what it keeps), and ``memory_usage(deep=True)`` per entry by
column. A consumer (``CONSUMERS``) runs on the whole store after its playlists and tracks tables are loaded;
``peak_mib`` is the process's peak. Appends the point to benchmarks/results/store-entries.json (``--out``) and
prints it.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.results_file import append_run

HERE = Path(__file__).resolve().parent
CONSUMERS = ("interactions", "split_store", "fusion_examples", "explore", "build_items", "playlist_items")


def _memory() -> tuple[float, float]:
    """(resident, peak resident) MiB of this process."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            values[line[:5]] = int(line.split()[1]) / 1024
    return values["VmRSS"], values["VmHWM"]


def _consumer(store, name: str):
    """Run one consumer of the entries on the whole store, as training runs it."""
    import numpy as np
    import pandas as pd

    pids = store.playlists["pid"].to_numpy()
    if name == "interactions":
        return store.interactions(pids)
    if name == "explore":
        from modules.explore.playlists import playlist_tracks

        return [playlist_tracks(store, int(p)) for p in pids[:20]]
    if name in ("split_store", "fusion_examples"):
        from modules.challenge import split_store
        from modules.hybrid.examples import fusion_examples

        split = split_store(store, per_category=50, seed=0)
        return split if name == "split_store" else fusion_examples(split, store, 5, 0)
    from modules.two_tower.config import TwoTowerConfig
    from modules.two_tower.examples import playlist_items
    from modules.two_tower.items import build_items

    no_catalog = pd.DataFrame({"track_uri": pd.Series([], dtype=object)})
    items = build_items(store, pids, no_catalog, TwoTowerConfig())
    return items if name == "build_items" else playlist_items(store, np.asarray(pids), items)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("store", type=Path)
    ap.add_argument("what", choices=("load", *CONSUMERS))
    ap.add_argument("--label", default="")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "store-entries.json")
    args = ap.parse_args(argv)
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import pyarrow as pa

    from modules.store import PlaylistStore

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(sys.modules["modules"].__file__).parent).stdout.strip()
    store = PlaylistStore(args.store)
    point = {"label": args.label, "commit": commit, "store": str(args.store), "what": args.what,
             "load_before": round(os.getloadavg()[0], 1)}
    if args.what != "load":
        _ = store.playlists, store.tracks  # loaded before, as every consumer's caller has them
    start, _ = _memory()
    t0, c0 = time.perf_counter(), time.process_time()
    if args.what == "load":
        entries = store.playlist_tracks
        point.update(seconds=round(time.perf_counter() - t0, 2), cpu_seconds=round(time.process_time() - c0, 2))
        rss, peak = _memory()
        gc.collect()
        pa.default_memory_pool().release_unused()
        released, _ = _memory()
        n = len(entries)
        point.update(entries=n, dtypes={c: str(t) for c, t in entries.dtypes.items()},
                     added_mib=round(rss - start), added_peak_mib=round(peak - start),
                     added_released_mib=round(released - start),
                     deep_bytes_per_entry={c: round(v / n, 1) for c, v in
                                           entries.memory_usage(deep=True, index=False).items()})
    else:
        _consumer(store, args.what)
        point.update(seconds=round(time.perf_counter() - t0, 2), cpu_seconds=round(time.process_time() - c0, 2))
        rss, peak = _memory()
        point.update(start_mib=round(start), end_mib=round(rss), peak_mib=round(peak))
    point["load_after"] = round(os.getloadavg()[0], 1)
    append_run(args.out, point)
    print(json.dumps(point))
    return 0


if __name__ == "__main__":
    sys.exit(main())
