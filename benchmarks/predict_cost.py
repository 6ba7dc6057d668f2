"""CPU per `:predict` call: the bundle's SavedModel against the same two-tower exported by other code.

    python -m benchmarks.predict_cost --model models/world
    python -m benchmarks.predict_cost --model models/world --code . /tmp/base   # this checkout against an older one

Exports the bundle's two-tower again with the ``modules.two_tower.export`` of each checkout in ``--code`` (default:
this one; each in a child process, into a temporary folder: the bundle is not touched; an older commit extracted
with ``git archive BASE | tar -x -C /tmp/base``), loads every SavedModel as the service does
(``SavedModelPredictor``: one playlist per call, one native thread), answers the load test's request mix
(``serve_load.make_requests``) with each, alternating round by round, and reports the CPU per call
(``time.process_time``), how each one's answers differ from the first ``--code``'s (identical, same tracks,
largest score difference) and the size of each SavedModel's variables. Appended to benchmarks/results/predict-cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.results_file import append_run

HERE = Path(__file__).resolve().parent


EXPORT = """
import sys
from modules.two_tower import TwoTowerRecommender
TwoTowerRecommender.load(sys.argv[1]).export_saved_model(sys.argv[2], int(sys.argv[3]))
"""


def export_with(code: Path, bundle: Path, out: Path, k: int) -> Path:
    """The bundle's two-tower exported to ``out`` by the ``modules`` of the checkout ``code``."""
    env = {**os.environ, "PYTHONPATH": str(code), "TF_USE_LEGACY_KERAS": "1"}
    subprocess.run([sys.executable, "-c", EXPORT, str(bundle.resolve()), str(out), str(k)], cwd=code, env=env,
                   check=True, stdout=subprocess.DEVNULL)
    return out


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def cpu_ms_per_call(predictor, requests: list[dict]) -> tuple[float, list]:
    answers = []
    c0 = time.process_time()
    for r in requests:
        answers.append(predictor.predict([r["seed_track_uris"]], [r["title"]])[0])
    return 1000 * (time.process_time() - c0) / len(requests), answers


def compare(answers: list[dict], reference: list[dict]) -> dict:
    """How ``answers`` differ from ``reference``: identical or not, the share of playlists with the same track
    list, and the largest difference of a score at the same rank."""
    same_uris = [a["track_uris"] == b["track_uris"] for a, b in zip(answers, reference, strict=True)]
    diff = max((abs(x - y) for a, b in zip(answers, reference, strict=True)
                for x, y in zip(a["scores"], b["scores"], strict=True)), default=0.0)
    return {"identical": answers == reference, "same_tracks_share": sum(same_uris) / max(len(same_uris), 1),
            "max_score_difference": diff}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.predict_cost", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=Path("models/world"))
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--code", type=Path, nargs="+", default=[Path(".")],
                    help="checkouts whose export to measure beside the bundle's own SavedModel (default: this one)")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "predict-cost.json")
    args = ap.parse_args(argv)

    from benchmarks.serve_load import make_requests
    from modules.bundle import Bundle
    from modules.service import limit_native_threads
    from modules.service.predictor import SavedModelPredictor

    limit_native_threads(1)
    shipped = Bundle(args.model).saved_model
    requests = make_requests(args.model, args.requests, 50, 0)
    with tempfile.TemporaryDirectory(prefix="predict-cost-") as tmp:
        models = {"bundle": SavedModelPredictor(shipped)}
        k = len(models["bundle"].predict([[]], [""])[0]["track_uris"])
        for i, code in enumerate(args.code):
            out = export_with(code.resolve(), args.model, Path(tmp) / f"export-{i}", k)
            models[str(code.resolve())] = SavedModelPredictor(out)
        cpu = {name: [] for name in models}
        answers = {}
        for p in models.values():  # warm-up
            cpu_ms_per_call(p, requests[:20])
        for _ in range(args.rounds):
            for name, p in models.items():
                ms, answers[name] = cpu_ms_per_call(p, requests)
                cpu[name].append(round(ms, 3))
        sizes = {name: folder_bytes(Path(p.path) / "variables") for name, p in models.items()}
    result = {"label": args.label, "command": "python -m benchmarks.predict_cost " + " ".join(sys.argv[1:]),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
              "requests": len(requests), "k": k, "cpu_ms_per_call": cpu,
              "median_cpu_ms_per_call": {n: sorted(v)[len(v) // 2] for n, v in cpu.items()},
              "against_first_code": {n: compare(a, answers[str(args.code[0].resolve())]) for n, a in answers.items()},
              "variables_bytes": sizes}
    print(json.dumps(result, indent=1))
    append_run(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
