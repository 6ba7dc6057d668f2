"""How fast the demo answers in a real browser: time from a click to all result cards drawn.

    python -m benchmarks.app_render --model models/world --query mix --switches 10
    python -m benchmarks.app_render --model models/world --out benchmarks/results/app-render-world.json

Starts ``streamlit run streamlit_app/app.py`` headless on loopback with the bundle, opens it in Debian's headless
Chromium (Playwright, no browser download), picks the first playlist whose title matches ``--query``, presses
Recommend (``first``: cold caches), then picks ``--switches`` other playlists one after another (``warm``: each
a new recommendation on a warm server, from the click on the playlist to its cards drawn in the page).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from streamlit_app import e2e

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "world"), help="bundle folder (default models/world)")
    ap.add_argument("--query", default="mix", help="playlist title search (default 'mix')")
    ap.add_argument("--switches", type=int, default=10, help="warm answers to time (default 10)")
    ap.add_argument("--screenshot", type=Path, default=None, help="save a screenshot of the last answer here")
    ap.add_argument("--out", type=Path, default=None, help="write the timings as JSON here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if not Path(e2e.CHROMIUM).exists():
        print(f"{e2e.CHROMIUM} is missing: apt-get install chromium (make browser)", file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    env = {"PLAYLIST_MODEL": str(Path(args.model).resolve())}
    log_file = Path("/tmp") / f"app-render-{int(time.time())}.log"
    with e2e.serve(env, log_file=log_file, timeout=300) as url, sync_playwright() as p:
        browser = e2e.launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            r = e2e.recommend_session(page, url, query=args.query, switches=args.switches,
                                      screenshot=args.screenshot)
        finally:
            browser.close()
    warm = r["warm"]
    result = {"model": str(args.model), "query": args.query, "page_load_s": round(r["page_load"], 2),
              "first_s": round(r["first"], 3), "warm_s": [round(t, 3) for t in warm],
              "warm_median_s": round(statistics.median(warm), 3), "warm_max_s": round(max(warm), 3),
              "answer_ms": r["answer_ms"], "answer_median_ms": statistics.median(a for a in r["answer_ms"][1:] if a),
              "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count(),
              "cards": len(r["cards"]), "machine": f"{platform.machine()}, {platform.system()}",
              "command": "python -m benchmarks.app_render " + " ".join(argv if argv is not None else sys.argv[1:])}
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
