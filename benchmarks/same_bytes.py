"""Behaviour-unchanged check for a restructure: the same commands give the same bytes before and after.

    python -m benchmarks.same_bytes --record   # on the commit before the change
    python -m benchmarks.same_bytes --check    # on the commit after it; exit 1 when any output differs

Runs the README's own commands as child processes on a small generated world (``world``, ``challenge``, ``train``,
``recommend --challenge``, ``recommend --playlist --json``, and ``submit`` for the single-part methods), then
hashes what they wrote: every submission CSV, every file of the trained bundle but its manifest (which carries the
package version and the training time) and the SavedModel's fingerprint (new on every export), with durations
dropped from JSON files and Parquet metadata, and the one-playlist JSON answer with its explanations. ``--record``
stores the hashes in ``benchmarks/results/same-bytes-<shape>-<N>.json``; ``--check`` compares against that file and
prints which outputs differ. A restructure that changes no behaviour keeps ``"differ": []``; a change that means to
alter outputs records a new reference in the same commit. Training is seeded (``--seed``), so the same commit gives
the same bytes on the same machine."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
METHODS = ("popularity", "itemknn", "rules", "content", "als")


def _run(args: list[str], cwd: Path, stdout: Path | None = None) -> None:
    cmd = [sys.executable, "-m", "modules", "-q", *args]
    started = time.monotonic()
    log = stdout.with_suffix(".log") if stdout else None
    with open(stdout, "wb") if stdout else open(os.devnull, "wb") as out:
        done = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.PIPE)
    if log:
        log.write_bytes(done.stderr)
    if done.returncode:
        sys.stderr.write(done.stderr.decode(errors="replace")[-4000:])
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}")
    print(f"{time.monotonic() - started:7.1f} s  {' '.join(args)}", file=sys.stderr, flush=True)


# what a run measures about itself (durations, rates) and the SavedModel's fingerprint (which differs on every
# export) are not behaviour: they are dropped before hashing
VOLATILE_FILES = {"saved_model/fingerprint.pb"}


def _volatile(key: str) -> bool:
    return key == "seconds" or key.endswith("_seconds") or key.endswith("per_s")


def _stable(value):
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if not _volatile(k)}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _parquet_bytes(path: Path) -> bytes:
    """The table's rows and its metadata without durations (a Parquet file stores both as bytes)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = {}
    for key, value in (table.schema.metadata or {}).items():
        if key != b"ARROW:schema":
            try:
                meta[key.decode()] = _stable(json.loads(value))
            except ValueError:
                meta[key.decode()] = value.decode(errors="replace")
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema.remove_metadata()) as writer:
        writer.write_table(table.replace_schema_metadata(None))
    return sink.getvalue().to_pybytes() + json.dumps(meta, sort_keys=True).encode()


def _sha(path: Path) -> str:
    if path.suffix == ".parquet":
        data = _parquet_bytes(path)
    elif path.suffix == ".json":
        data = json.dumps(_stable(json.loads(path.read_bytes())), sort_keys=True).encode()
    else:
        data = path.read_bytes()
    return hashlib.sha256(data).hexdigest()


def run_commands(work: Path, playlists: int, seed: int, epochs: int, shape: str) -> None:
    """Run the commands, writing everything into ``work``."""
    repo = HERE.parent
    world, split, bundle = work / "world", work / "split", work / "bundle"
    _run(["world", "--playlists", str(playlists), "--seed", str(seed), "--shape", shape, "--out", str(world)], repo)
    _run(["challenge", str(world), "--out", str(split), "--per-category", "10", "--seed", str(seed)], repo)
    _run(["train", "--mpd", str(split / "train"), "--out", str(bundle), "--seed", str(seed),
          "--epochs", str(epochs)], repo)
    _run(["recommend", "--model", str(bundle), "--challenge", str(split / "challenge_set.json"),
          "--out", str(work / "hybrid.csv")], repo)
    challenge = json.loads((split / "challenge_set.json").read_text())
    playlist = next(p for p in challenge["playlists"] if p.get("name") and p["tracks"])
    (work / "one.json").write_text(json.dumps(playlist))
    _run(["recommend", "--model", str(bundle), "--playlist", str(work / "one.json"), "--json", "-k", "20"], repo,
         stdout=work / "one-answer.json")
    for method in METHODS:
        _run(["submit", method, "--train", str(split / "train"), "--challenge", str(split / "challenge_set.json"),
              "--out", str(work / f"{method}.csv"), "--seed", str(seed)], repo)


def hash_outputs(work: Path) -> dict[str, str]:
    """{output name: sha256} of what :func:`run_commands` wrote into ``work``."""
    hashes = {"answer/one-playlist": _sha(work / "one-answer.json")}
    for method in ("hybrid", *METHODS):
        hashes[f"submission/{method}"] = _sha(work / f"{method}.csv")
    bundle = work / "bundle"
    for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
        rel = path.relative_to(bundle).as_posix()
        if rel != "manifest.json" and not any(rel.endswith(v) for v in VOLATILE_FILES):
            hashes[f"bundle/{rel}"] = _sha(path)
    return hashes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--record", action="store_true", help="store the hashes as the reference")
    mode.add_argument("--check", action="store_true", help="compare with the stored reference")
    ap.add_argument("--playlists", type=int, default=1000, help="world size (default 1000)")
    ap.add_argument("--shape", choices=("catalog", "mpd"), default="mpd", help="world shape (default mpd)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=2, help="two-tower epochs (default 2)")
    ap.add_argument("--work", type=Path, help="folder for the run's files (default: a temporary folder)")
    ap.add_argument("--hash-only", action="store_true",
                    help="hash what an earlier run left in --work instead of running the commands again")
    args = ap.parse_args(argv)
    if args.hash_only and not args.work:
        ap.error("--hash-only needs --work DIR, the folder of an earlier run")
    ref = HERE / "results" / f"same-bytes-{args.shape}-{args.playlists}.json"
    with tempfile.TemporaryDirectory(prefix="same-bytes-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if not args.hash_only:
            run_commands(work, args.playlists, args.seed, args.epochs, args.shape)
        hashes = hash_outputs(work)
    setting = {"playlists": args.playlists, "shape": args.shape, "seed": args.seed, "epochs": args.epochs}
    if args.record:
        ref.write_text(json.dumps({"setting": setting, "hashes": hashes}, indent=1, sort_keys=True) + "\n")
        print(json.dumps({"recorded": str(ref.relative_to(HERE.parent)), "outputs": len(hashes)}))
        return 0
    if not ref.exists():
        print(f"no reference {ref}: run with --record on the commit before the change", file=sys.stderr)
        return 2
    stored = json.loads(ref.read_text())
    if stored["setting"] != setting:
        print(f"the reference was recorded with {stored['setting']}, not {setting}", file=sys.stderr)
        return 2
    old = stored["hashes"]
    differ = sorted(k for k in old.keys() | hashes.keys() if old.get(k) != hashes.get(k))
    print(json.dumps({"outputs": len(hashes), "differ": differ}, indent=1))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
