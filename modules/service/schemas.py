"""The REST service's request and response bodies: pydantic models, which are also its OpenAPI schema."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr


def _valid_unicode(value: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # JSON allows "\ud800"; UTF-8, TensorFlow and the response writers do not
        from modules.query import lone_surrogate  # (not at the top: `serve --help` imports this module)

        raise ValueError(f"not valid Unicode: {lone_surrogate(value)} (JSON's \\ud800-\\udfff escapes must come "
                         "in high-low pairs)") from None
    return value


Text = Annotated[StrictStr, AfterValidator(_valid_unicode)]  # a JSON string that is valid Unicode


class RecommendRequest(BaseModel):
    """One playlist to continue: its tracks (any number, may be empty) and/or its title."""

    model_config = ConfigDict(extra="forbid")

    seed_track_uris: list[Text] = Field(default_factory=list, description="the playlist's track URIs")
    title: Text | None = Field(None, description="the playlist title")
    k: StrictInt = Field(50, description="number of tracks to return (1 … the server's --max-k)")
    weights: dict[Text, float] | None = Field(
        None, description='emphasis on audio features, e.g. {"energy": 2.0} (see Recommender.recommend)')
    mode: Literal["hybrid", "collaborative"] = Field("hybrid", description="collaborative: two-tower order only")
    explain: bool = Field(True, description="write explanations for the returned tracks")


class Parts(BaseModel):
    retrieval: float | None = Field(None, description="two-tower score")
    rules: float | None = Field(None, description="association-rule score")
    content: float | None = Field(None, description="content similarity (sound and tags)")


class Recommendation(BaseModel):
    rank: int
    track_uri: str
    track_name: str
    artist_name: str
    score: float
    parts: Parts
    explanation: str


class RecommendResponse(BaseModel):
    recommendations: list[Recommendation]
    took_ms: float


class PredictInstance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed_track_uris: list[Text] = Field(default_factory=list)
    title: Text = ""


class PredictRequest(BaseModel):
    """TensorFlow-Serving "row" format: one object per playlist with the signature's named inputs."""

    model_config = ConfigDict(extra="forbid")

    signature_name: Text = "serving_default"
    instances: Annotated[list[PredictInstance], Field(min_length=1)]


class Prediction(BaseModel):
    track_uris: list[str]
    scores: list[float]


class PredictResponse(BaseModel):
    predictions: list[Prediction]


def finite_list(values, missing: float | None = None) -> list:
    """Floats of an array as a list, ``missing`` where not finite (JSON has no NaN)."""
    a = np.asarray(values, np.float64)
    out = a.tolist()
    if not np.isfinite(a).all():
        for i in np.flatnonzero(~np.isfinite(a)).tolist():
            out[i] = missing
    return out
