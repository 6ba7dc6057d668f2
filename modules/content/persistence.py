"""The content model on disk: a folder of JSON and arrays (no pickle), written by ``save`` and read by ``load``.

``manifest.json`` (format and parameters), ``arrays.npz`` (numbers only: the audio vectors, flags, IDF and
scaler), ``text.npz`` (the sparse tag vectors) and ``tokens.json`` (URIs, vocabulary, labels, names). A bundle
keeps this folder as ``content/``; a change of layout needs a new ``MODEL_FORMAT``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import orjson
from scipy import sparse
from sklearn.utils.validation import check_is_fitted

from modules.errors import ContentError

MODEL_FORMAT = "content-model/1"


def save_model(model, path: str | os.PathLike) -> Path:
    """Write a fitted ``ContentModel`` to directory ``path`` (manifest.json, arrays.npz, text.npz, tokens.json)."""
    check_is_fitted(model, "numeric_")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    params = model.get_params()
    params["features"] = list(params["features"])
    manifest = {"format": MODEL_FORMAT, "params": params, "tracks": len(model.uris_),
                "tokens": len(model.vocab_)}
    np.savez(path / "arrays.npz", numeric=model.numeric_, has_num=model.has_num_, has_text=model.has_text_,
             idf=model.idf_, scaler_mean=model.scaler_mean_, scaler_scale=model.scaler_scale_,
             base_weights=model.base_weights_)
    sparse.save_npz(path / "text.npz", model.text_)
    (path / "tokens.json").write_bytes(orjson.dumps({"uris": model.uris_.tolist(), "vocab": model.vocab_.tolist(),
                                                     "labels": model.labels_.tolist(),
                                                     "names": model.names_.tolist()}))
    (path / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2))
    return path


def load_model(cls, path: str | os.PathLike):
    """A ``cls`` (``ContentModel``) written by ``save_model``."""
    path = Path(path)
    manifest_file = path / "manifest.json"
    if not manifest_file.exists():
        raise ContentError(f"{path} holds no content model (no manifest.json); write one with ContentModel.save.")
    manifest = orjson.loads(manifest_file.read_bytes())
    if manifest.get("format") != MODEL_FORMAT:
        raise ContentError(f"{path} has format {manifest.get('format')!r}; this code reads {MODEL_FORMAT!r}.")
    params = manifest["params"]
    params["features"] = tuple(params["features"])
    params.setdefault("album_weight", 0.0)  # written before albums were a tag group: it has none
    model = cls(**params)
    arrays = np.load(path / "arrays.npz", allow_pickle=False)  # numbers only: never unpickle a file
    model.numeric_, model.has_num_, model.has_text_ = arrays["numeric"], arrays["has_num"], arrays["has_text"]
    model.idf_ = arrays["idf"]
    model.scaler_mean_, model.scaler_scale_ = arrays["scaler_mean"], arrays["scaler_scale"]
    model.base_weights_ = arrays["base_weights"]
    model.num_norm_ = np.linalg.norm(model.numeric_ * model.base_weights_.astype(np.float32), axis=1)
    model.text_ = sparse.load_npz(path / "text.npz").tocsr()
    tokens = orjson.loads((path / "tokens.json").read_bytes())
    model.uris_ = np.array(tokens["uris"], dtype=object)
    model.vocab_ = np.array(tokens["vocab"], dtype=object)
    model.labels_ = np.array(tokens["labels"], dtype=object)
    model._names_from = path  # the names are read on first use (ContentModel.names_)
    model.index_ = {u: i for i, u in enumerate(tokens["uris"])}
    del tokens
    model._finish()
    return model


def read_names(path: str | os.PathLike) -> np.ndarray:
    """The track names of the model in folder ``path`` (``uris_`` order), from its ``tokens.json``."""
    return np.array(orjson.loads((Path(path) / "tokens.json").read_bytes())["names"], dtype=object)
