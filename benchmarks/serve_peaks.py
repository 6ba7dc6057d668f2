"""Where serving's peak memory comes from: the resident memory after imports and after loading a bundle, then
each challenge playlist's own peak above what the process held before it (``/proc/self/status`` VmHWM, reset
before every query through ``/proc/self/clear_refs``), the largest first.

    python -m benchmarks.serve_peaks BUNDLE SPLIT/challenge_set.json [--playlists 120]

Queries run as ``benchmarks.mpd_scale``'s serve stage runs them (k=500, no explanations, BLAS on one thread).
A query whose peak stands far above the others points at a transient allocation (e.g. a cache built on first
use); memory that stays after a query shows in the resident memory at the end. Linux only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

STATUS = Path("/proc/self/status")


def memory() -> tuple[int, int]:
    """(resident, peak resident since the last reset) in MiB."""
    got = {line.split(":")[0]: int(line.split()[1]) // 1024 for line in STATUS.read_text().splitlines()
           if line.startswith(("VmRSS", "VmHWM"))}
    return got["VmRSS"], got["VmHWM"]


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.serve_peaks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("challenge", type=Path, help="a challenge_set.json")
    ap.add_argument("--playlists", type=int, default=120, help="how many of its playlists to answer")
    args = ap.parse_args(argv)

    import implicit.cpu.als  # noqa: F401  (what loading a bundle imports, counted before it; not TensorFlow,
    import sklearn.ensemble  # noqa: F401   which loading and answering no longer import: tensorflow_imported)

    from modules.base import single_thread_native
    from modules.mpd import read_challenge
    from modules.query import Query
    from modules.recommender import Recommender

    out = {"imports_mib": memory()[0]}
    reset_peak()
    t = time.perf_counter()
    rec = Recommender.load(args.bundle)
    out["load_seconds"] = round(time.perf_counter() - t, 1)
    out["after_load_mib"], out["load_peak_mib"] = memory()
    playlists = read_challenge(args.challenge)["playlists"][: args.playlists]
    features = rec.audio_features
    spikes = []
    with single_thread_native():
        for i, p in enumerate(playlists):
            reset_peak()
            before = memory()[0]
            rec.recommend_many([Query.from_playlist(p, index=0, k=500, explain=False, features=features)])
            spikes.append({"query": i, "above_mib": memory()[1] - before, "seeds": len(p.get("tracks", ())),
                           "title": p.get("name")})
    spikes.sort(key=lambda s: -s["above_mib"])
    out["end_mib"] = memory()[0]
    out["tensorflow_imported"] = "tensorflow" in sys.modules
    out["largest_query_peaks"] = spikes[:8]
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
