"""The hybrid recommender: two-tower candidates → rule signals → content similarity → a learned fusion.

For one playlist:

1. **candidates** (``sources/``, ``candidates.py``): the two-tower's top ``n_candidates`` (any playlist, no
   retraining), unioned with the rule consequents of the seeds, ALS's top tracks and the most popular tracks (so
   title-only or all-unknown playlists still have a pool). Each part is a candidate source behind one interface
   (``sources.base.CandidateSource``: ``retrieve(queries, n)``, ``features(query, candidates)``), over one id
   space (``ids.py``);
2. **features** per candidate (``features.py``): the context (popularity, shared artist / album, number of seeds,
   title or not) and each source's (two-tower score, gap and rank; the rules' confidence and lift; content and
   audio-taste similarity; ALS score and rank);
3. **fusion** (``fusion.py``, ``blend.py``): a scikit-learn model trained on a validation split carved from the
   *training* playlists (``modules.validation``; the two-tower holds out the same playlists, so it never saw
   them): each candidate is labelled by whether it is among the playlist's held-out tracks. The fusion kinds are
   compared by two-fold cross-fitting and the one-standard-error rule, and a per-length blend with the ALS and
   two-tower z-scores is chosen on the same cuts (``examples.py``, ``selection.py``).

``training.py`` runs those steps, ``persistence.py`` writes and reads the bundle folder, ``recommender.py`` is the
``HybridRecommender`` users call. ``parts`` switches parts off for ablations (``("two_tower", "rules")`` …); the
fusion then learns on what is left.
"""

from modules.errors import HybridError
from modules.hybrid.blend import ALS_UNKNOWN_Z, BLEND_BUCKETS, BLEND_GRID, BLEND_OBJECTIVE
from modules.hybrid.blend import blend as _blend
from modules.hybrid.blend import length_bucket as _length_bucket
from modules.hybrid.candidates import CandidateSet
from modules.hybrid.features import BASE_FEATURES, DEFAULT_PARTS, PART_FEATURES, PARTS
from modules.hybrid.fusion import FUSION_KINDS, HGB_DEFAULTS, LENGTH_BUCKETS, LINEAR_FUSIONS
from modules.hybrid.fusion import EmptyColumnsToZero as _EmptyColumnsToZero
from modules.hybrid.fusion import FusionByLength as _FusionByLength
from modules.hybrid.fusion import fusion_score as _fusion_score
from modules.hybrid.fusion import make_fusion as _make_fusion
from modules.hybrid.persistence import FUSION_FOLDER_FORMAT
from modules.hybrid.recommender import HybridRecommender
from modules.hybrid.selection import PER_CUT
from modules.hybrid.selection import choose_fusion_kind as _choose_fusion_kind
from modules.hybrid.sources.base import RECENT_SEEDS

# the private names are what tests and benchmarks imported from the single-file module (and what the previous
# bundle format's pickles name: ``_FusionByLength``, ``_EmptyColumnsToZero``)
__all__ = ["ALS_UNKNOWN_Z", "BASE_FEATURES", "BLEND_BUCKETS", "BLEND_GRID", "BLEND_OBJECTIVE", "DEFAULT_PARTS",
           "FUSION_FOLDER_FORMAT", "FUSION_KINDS", "HGB_DEFAULTS", "LENGTH_BUCKETS", "LINEAR_FUSIONS",
           "PARTS", "PART_FEATURES", "PER_CUT", "RECENT_SEEDS", "CandidateSet", "HybridError", "HybridRecommender",
           "_EmptyColumnsToZero", "_FusionByLength", "_blend", "_choose_fusion_kind", "_fusion_score",
           "_length_bucket", "_make_fusion"]
