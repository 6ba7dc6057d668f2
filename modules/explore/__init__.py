"""Data preparation for the demo app and anything else that shows a bundle to people.

The Streamlit pages stay thin: everything here is plain pandas/numpy over a ``Recommender`` or a bundle
folder, so the CLI or the REST service can reuse it and the tests check it without a browser.

* ``playlists``: find a playlist by title, its seed tracks, track references pasted as URIs or Spotify links;
  how many seeds the model knows, the export as a challenge-format line or CSV, album art, track search;
* ``catalog_map``: the bundle's tracks on a 2-D PCA map with KMeans clusters (``modules.content.feature_map``),
  their audio features for distributions;
* ``rule_browser``: the bundle's association rules with track names, filtered, and a small network layout;
* ``model_report``: the two-tower training curve and the quality benchmark results (``benchmarks/quality.py``).

They read a ``Recommender`` only through its public methods (``track_label``, ``content_model``, ``search`` …).
"""

from modules.errors import ExploreError
from modules.explore.catalog_map import bundle_map, map_positions, sample_map, track_features
from modules.explore.model_report import benchmark_results, benchmark_table, training_curve
from modules.explore.playlists import (
    RESULT_EXPORT_COLUMNS,
    album_art,
    challenge_line,
    embed_url,
    parse_track_refs,
    playlist_tracks,
    results_csv,
    search_playlists,
    search_tracks,
    seed_status,
    status_note,
    track_id,
)
from modules.explore.rule_browser import RuleTable, rule_graph

__all__ = ["RESULT_EXPORT_COLUMNS", "ExploreError", "RuleTable", "album_art", "benchmark_results", "benchmark_table",
           "bundle_map", "challenge_line", "embed_url", "map_positions", "parse_track_refs", "playlist_tracks",
           "results_csv", "rule_graph", "sample_map", "search_playlists", "search_tracks", "seed_status",
           "status_note", "track_features", "track_id", "training_curve"]
