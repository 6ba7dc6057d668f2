"""``HybridRecommender``: the surface of the hybrid (parameters, ``fit``, ``recommend``, ``save``, ``load``).

Each method delegates to the module that owns the concept: ``training`` (how it is fitted), ``sources`` (the
parts as candidate sources over one id space), ``features`` (a playlist's candidate set), ``fusion`` and ``blend``
(how candidates are scored), ``persistence`` (the bundle folder). The fitted state lives here, in the attributes
that end in ``_``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from modules.base import PlaylistRecommender, single_thread_native
from modules.errors import HybridError
from modules.hybrid import persistence, training
from modules.hybrid.blend import blended
from modules.hybrid.candidates import CandidateSet
from modules.hybrid.features import DEFAULT_PARTS, PARTS, candidate_set
from modules.hybrid.fusion import FUSION_KINDS, fusion_score, make_fusion
from modules.hybrid.sources import SourceSet


class HybridRecommender(PlaylistRecommender):
    """Two-tower candidates, rule and content signals, blended by a model learned on validation playlists.

    Parameters
    ----------
    parts : tuple of str, default=("two_tower", "rules", "content", "als")
        Which parts feed the fusion; ``"two_tower"`` is required (it generates candidates). ``"als"`` is implicit's
        ALS folded in from the seeds: its scores and its top candidates (the two lists are complementary).
    n_candidates : int, default=1500
        Two-tower candidates per playlist (rule consequents and popular tracks are added).
    n_rule_candidates : int, default=300
        Rule consequents added to the pool.
    n_popular_candidates : int, default=100
        Most popular training tracks added to the pool.
    candidates_per_k : float >= 1 or None, default=10
        A request for ``k`` tracks scores a pool sized to ``k``: the two-tower's best
        ``max(min_candidates, ceil(candidates_per_k * k))`` (the full pool once that reaches ``n_candidates``)
        and the same share of the rule, ALS and popular candidates (``pool_sizes``; every feature still reads
        all the sources retrieved). With the defaults a request for 150 tracks or more, the challenge's 500
        among them, gets exactly the full pool's answer, and one for 50 scores ~540 candidates instead of
        ~1,600 at no measured loss at k = 10, 20, 50 or 100 (docs/serving.md, "Fifth round"). ``None``: always
        the full pool.
    min_candidates : int, default=500
        The fewest two-tower candidates of a pool sized to ``k``.
    validation_per_category : int or "auto", default="auto"
        Validation playlists per challenge category carved from the training playlists (halved until the
        data allows it). ``"auto"``: 1.5 % of the training playlists, 10 to 50 per category
        (``modules.challenge.validation_per_category``). The two-tower holds out the same playlists for its
        early stopping.
    fusion_cuts : int, default=4
        Cuts per validation playlist the fusion learns from: the official one plus others in the categories the
        playlist is long enough for (so 10 per category still teaches every kind of playlist).
    audio_taste : bool, default=True
        With the content part: add the playlist's genre-conditional popularity and, per audio feature, how well a
        candidate fits the seeds' sound against what their genres alone would give (``modules.hybrid.sources.taste``).
    fusion : {"auto", "hgb", "logistic", "logistic_by_length"}, default="auto"
        The fusion model; ``"auto"`` picks by two-fold cross-fitted NDCG on the validation playlists.
        ``"logistic_by_length"`` fits one logistic regression per playlist-length bucket.
    two_tower, rules, content, als : dict, default=None
        Parameters of each part (``TwoTowerRecommender``, ``RuleRecommender``, ``ContentModel``,
        ``ALSRecommender``).
    two_tower_bundle : path, default=None
        Reuse a two-tower trained by ``train-two-tower`` on the same playlists (checked) instead of training one.
    features : DataFrame, default=None
        Audio features (``track_uri`` + feature columns) for the two-tower and the content model; ``None``
        reads the shipped catalog.
    seed : int, default=0
    show_progress : bool, default=False

    Attributes
    ----------
    two_tower_, rules_, content_, als_ : fitted parts (``None`` when switched off)
    fusion_ : fitted scikit-learn estimator (``None``: the two-tower's order)
    fusion_kind_ : str
    feature_names_ : tuple of str
    blend_ : dict or None
        Blend weights ``(a, c)`` per playlist-length bucket (``modules.hybrid.blend``).
    validation_ : dict
        Validation metrics of the fused ranking (cross-fitted) and of the two-tower alone.
    track_uris_, artist_code_, album_code_, pop_log_, popular_ : ndarray
        Per-track tables the features read (``modules.hybrid.features.track_tables``).
    """

    def __init__(self, *, parts=DEFAULT_PARTS, n_candidates: int = 1500, n_rule_candidates: int = 300,
                 n_popular_candidates: int = 100, candidates_per_k: float | None = 10,
                 min_candidates: int = 500, validation_per_category: int | str = "auto",
                 fusion_cuts: int = 4, audio_taste: bool = True,
                 fusion: str = "auto",
                 two_tower: dict | None = None, rules: dict | None = None, content: dict | None = None,
                 als: dict | None = None, two_tower_bundle: str | None = None, features=None, seed: int = 0,
                 show_progress: bool = False):
        self.parts = parts
        self.n_candidates = n_candidates
        self.n_rule_candidates = n_rule_candidates
        self.n_popular_candidates = n_popular_candidates
        self.candidates_per_k = candidates_per_k
        self.min_candidates = min_candidates
        self.validation_per_category = validation_per_category
        self.fusion_cuts = fusion_cuts
        self.audio_taste = audio_taste
        self.fusion = fusion
        self.two_tower = two_tower
        self.rules = rules
        self.content = content
        self.als = als
        self.two_tower_bundle = two_tower_bundle
        self.features = features
        self.seed = seed
        self.show_progress = show_progress

    # -- validation of parameters -----------------------------------------------------------------------
    def _check_params(self) -> tuple[str, ...]:
        """The parts switched on, in ``PARTS`` order; raises ``HybridError`` naming a bad parameter."""
        parts = (self.parts,) if isinstance(self.parts, str) else tuple(self.parts)
        unknown = [p for p in parts if p not in PARTS]
        if unknown or "two_tower" not in parts:
            raise HybridError(f"The 'parts' parameter of HybridRecommender must list parts from {list(PARTS)} and "
                              f"include 'two_tower' (it generates the candidates). Got {self.parts!r} instead.")
        for name in ("n_candidates", "n_rule_candidates", "n_popular_candidates", "validation_per_category",
                     "fusion_cuts"):
            v = getattr(self, name)
            if name == "validation_per_category" and v == "auto":
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "n_candidates" else 0):
                also = " or 'auto'" if name == "validation_per_category" else ""
                raise HybridError(f"The {name!r} parameter of HybridRecommender must be an int >= "
                                  f"{1 if name == 'n_candidates' else 0}{also}. Got {v!r} instead.")
        self._check_pool_rule()
        if not isinstance(self.audio_taste, bool):
            raise HybridError(f"The 'audio_taste' parameter of HybridRecommender must be True or False. Got "
                              f"{self.audio_taste!r} instead.")
        if self.fusion not in ("auto", *FUSION_KINDS):
            raise HybridError(f"The 'fusion' parameter of HybridRecommender must be 'auto' or one of "
                              f"{list(FUSION_KINDS)}. Got {self.fusion!r} instead.")
        return tuple(p for p in PARTS if p in parts)

    def _check_pool_rule(self) -> None:
        """Raises ``HybridError`` when ``candidates_per_k`` or ``min_candidates`` is not usable (also at load: they
        are serving parameters a bundle's config may carry)."""
        per_k = self.candidates_per_k
        if per_k is not None and (isinstance(per_k, bool) or not isinstance(per_k, (int, float))
                                  or not math.isfinite(per_k) or per_k < 1):
            raise HybridError(f"The 'candidates_per_k' parameter of HybridRecommender must be a number >= 1 (two-tower "
                              f"candidates per requested track: at least k) or None (always the full pool). Got "
                              f"{per_k!r} instead.")
        v = self.min_candidates
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise HybridError(f"The 'min_candidates' parameter of HybridRecommender must be an int >= 0. Got {v!r} "
                              "instead.")

    # -- fitting ----------------------------------------------------------------------------------------
    def fit(self, store, pids=None):
        """Fit the parts, learn the fusion on validation playlists carved from ``store`` (``pids``), refit the
        cheap parts (rules, content, ALS) on all training playlists (``modules.hybrid.training``). Returns
        ``self``."""
        training.fit(self, store, pids)
        return self

    # -- recommending -----------------------------------------------------------------------------------
    def _recommend(self, seeds, title, k):
        with single_thread_native():
            cs = self.candidate_set(seeds, title, k=k)
            score = self.score_candidates(cs)
        order = cs.order(score, k)
        return cs.uris[order].tolist(), score[order]

    def retrieve(self, queries: list[tuple[list[str], str | None]]) -> list[dict]:
        """Every source's candidates for several playlists ``(seeds, title)`` at once, one answer per playlist
        to pass to ``candidate_set``. The whole-catalog scans (the two-tower's, ALS's: 13 and 26 MB of factors on
        the demo bundle) are shared by the batch; a playlist's answer is bit-identical alone or in any batch."""
        sources = self._sources()
        return sources.retrieve([sources.query(seeds, title) for seeds, title in queries])

    def candidate_set(self, seeds: list[str], title: str | None, feature_weights=None,
                      retrieved: dict | None = None, k: int | None = None) -> CandidateSet:
        """Candidates of one playlist with their features (seeds excluded); ``retrieved`` is the playlist's
        ``retrieve`` answer when it was computed with others; ``k``, the tracks asked for, sizes the pool
        (``pool_sizes``; ``None``: the full pool, as the fusion was fitted on). A request with audio-feature
        weights keeps the full pool: their emphasis re-ranks by rank percentiles over the pool, a ranking the
        pool's quality check did not cover."""
        sources = self._sources()
        query = sources.query(seeds, title, feature_weights)
        found = retrieved if retrieved is not None else sources.retrieve([query])[0]
        return candidate_set(sources, dataclasses.replace(query, found=found), self.feature_names_,
                             self.artist_code_, self.album_code_, None if feature_weights else self.pool_sizes(k))

    def pool_sizes(self, k: int | None) -> dict[str, int] | None:
        """How many of each source's candidates a request for ``k`` tracks pools (source name → count), or
        ``None`` for the full pool (``k`` None, ``candidates_per_k`` None, or ``k`` large enough).

        Most of a request's features cost is per candidate; a request for 50 tracks does not need the 2,000 a
        submission of 500 ranks (docs/serving.md, "Fifth round")."""
        per_k = self.candidates_per_k
        if k is None or per_k is None:
            return None
        m = max(self.min_candidates, math.ceil(per_k * int(k)))
        if m >= self.n_candidates:
            return None
        share = m / self.n_candidates
        return {name: m if name == "two_tower" else math.ceil(share * n) for name, n in self._pool_sizes_full().items()}

    def _pool_sizes_full(self) -> dict[str, int]:
        """How many candidates each pooling source proposes (``retrieve``'s ``n``): the full pool."""
        return {"two_tower": self.n_candidates, "rules": self.n_rule_candidates, "als": self.n_rule_candidates,
                "popularity": self.n_popular_candidates}

    @staticmethod
    def fired_rules(retrieved: dict) -> np.ndarray | None:
        """The rules that fired for a playlist's seeds in its ``retrieve`` answer (``RuleScores.fired``), for
        ``rules_.explain_many(fired=…)``; ``None`` when the rules did not retrieve for it."""
        found = retrieved.get("rules")
        return None if found is None or found.data is None else found.data.fired

    def score_candidates(self, cs: CandidateSet) -> np.ndarray:
        """Fused scores of a candidate set (higher is better): the fusion, blended with the ALS and two-tower
        z-scores by the weights ``fit`` chose for the playlist's length."""
        if self.fusion_ is None:
            return cs.column("tt_score")
        return blended(fusion_score(self.fusion_, cs.X), cs, getattr(self, "blend_", None))

    def unknown(self, uris) -> list[str]:
        """The URIs that are not training tracks (they add nothing as seeds)."""
        uris, ids = list(uris), self._ids()
        return [u for u, i in zip(uris, ids.of(uris).tolist()) if not 0 <= i < ids.n_known]

    def _sources(self) -> SourceSet:
        """The fitted parts as candidate sources over one id space, built once per fitted state (and again when
        a part is replaced)."""
        parts = (self.two_tower_, self.rules_, getattr(self, "als_", None), self.content_)
        sources = getattr(self, "_sources_", None)
        if sources is None or any(a is not b for a, b in zip(sources.parts, parts, strict=True)):
            sources = self._sources_ = SourceSet(
                two_tower=parts[0], rules=parts[1], als=parts[2], content=parts[3], track_uris=self.track_uris_,
                popular=self.popular_, pop_log=self.pop_log_, sizes=self._pool_sizes_full(),
                taste="taste" in self.feature_names_)
        return sources

    def _ids(self):
        """The id space of the candidates (``modules.hybrid.ids.IdMaps``)."""
        return self._sources().ids

    def _new_fusion(self, kind: str, params: dict | None = None):
        return make_fusion(kind, self.seed, params, self.feature_names_.index("n_seeds_log"))

    # -- persistence ------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> dict:
        """Write the parts and the fusion into the bundle folder ``path``; returns what was written (part →
        file). Nothing written is a pickle (docs/bundle.md lists each file and its format)."""
        return persistence.save(self, path)

    def save_fusion(self, path: str | Path) -> Path:
        """Write the fusion model and the hybrid's own tables to folder ``path`` (``modules.hybrid.persistence``)."""
        return persistence.save_fusion(self, path)

    @classmethod
    def load(cls, path: str | Path) -> HybridRecommender:
        """A hybrid from a bundle folder written by ``save``; nothing it reads can run code."""
        return persistence.load(cls, path)

    @classmethod
    def _load_fusion(cls, path: Path) -> HybridRecommender:
        return persistence.load_fusion(cls, Path(path))

    def get_params(self) -> dict:
        names = ("parts", "n_candidates", "n_rule_candidates", "n_popular_candidates", "candidates_per_k",
                 "min_candidates", "validation_per_category",
                 "fusion_cuts", "audio_taste", "fusion", "two_tower", "rules", "content", "als", "two_tower_bundle",
                 "features", "seed", "show_progress")
        return {k: getattr(self, k) for k in names}
