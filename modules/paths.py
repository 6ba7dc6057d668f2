"""Where the project's shipped files live, found relative to the package (never ``../shared``)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
DEFAULT_CATALOG = DATA_DIR / "spotify_tracks" / "spotify_tracks.parquet"
MODELS_DIR = REPO_ROOT / "models"
