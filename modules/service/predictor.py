"""The bundle's two-tower SavedModel behind ``/v1/models/<name>:predict``: plain TensorFlow, no project code."""

from __future__ import annotations

from pathlib import Path

from modules.service.config import ServiceError


class SavedModelPredictor:
    """The bundle's exported two-tower SavedModel, called exactly as TensorFlow Serving would call it."""

    def __init__(self, path: str | Path):
        import tensorflow as tf

        path = Path(path)
        if not (path / "saved_model.pb").exists():
            raise ServiceError(f"no SavedModel at {path} (expected saved_model.pb); retrain the bundle with "
                               "python -m modules train")
        self.path = path
        self._tf = tf
        self.model = tf.saved_model.load(str(path))
        self.signature = self.model.signatures["serving_default"]

    def predict(self, seed_lists: list[list[str]], titles: list[str]) -> list[dict[str, list]]:
        """One row per playlist: ``{"track_uris": [...], "scores": [...]}`` (seeds padded with "")."""
        tf = self._tf
        width = max([len(s) for s in seed_lists] + [1])
        seeds = [list(s) + [""] * (width - len(s)) for s in seed_lists]
        out = self.signature(seed_track_uris=tf.constant(seeds, dtype=tf.string),
                             title=tf.constant(titles, dtype=tf.string))
        uris, scores = out["track_uris"].numpy(), out["scores"].numpy()
        return [{"track_uris": [u.decode() for u in uris[i]], "scores": [float(s) for s in scores[i]]}
                for i in range(len(seed_lists))]
