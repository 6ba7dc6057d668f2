"""Inductive two-tower retrieval (TensorFlow Recommenders): any playlist answered from its seeds and title.

The proof of concept embedded playlist IDs, so a new playlist meant retraining. Here the query tower reads what
a challenge playlist actually has, so any playlist is answered without retraining:

* **query tower**: the seed tracks (track + artist + album embeddings, plus audio features), masked-mean
  pooled over any number of seeds including none (the per-dimension max as an extra input), and the title
  (Keras ``TextVectorization`` words and character trigrams, each masked-mean pooled), mixed by a small MLP
  whose output is added to the pooled seed vector;
* **candidate tower**: track + artist + album embeddings plus standardized audio features where the feature
  table has them (a learned "missing" vector where it does not); by default the same item encoder as the
  seeds, L2-normalized, plus a learned per-track/per-artist score bias carried as one extra dimension (the
  query side carries a constant 1), so retrieval stays one dot product. Tracks rarer than ``min_track_count`` and
  artists/albums never seen in training share hashed OOV buckets; during training a share (``id_dropout``) of
  track IDs is replaced by their OOV bucket, so the buckets are trained and the towers learn to lean on
  artist, album and audio when a track ID says nothing.

Training examples mimic the task: from each training playlist several (context = a random subset or a prefix
of its tracks, title dropped sometimes → target = one of its other tracks). The loss is TFRS's ``Retrieval``
task: in-batch softmax with the sampling-bias (logQ) correction for popularity, accidental hits removed and
in-batch candidates that are in the query's own context masked. A validation split carved from the training
playlists (``split_store`` on training pids), or handed in by the caller, drives early stopping on recall@500.

One file per part::

    config.py       TwoTowerConfig: every knob, and its validation
    items.py        the item table: track/artist/album indices and audio features of every known track
    text.py         the title vectorizers (words, character trigrams)
    towers.py       item encoder, query tower, candidate tower (Keras layers)
    retrieval.py    the TFRS model joining the towers: the training loss
    optimizer.py    Adam or LazyAdam (lazy_adam.py), by vocabulary size
    examples.py     training playlists and the per-epoch example sampler
    training.py     the training loop: early stopping, checkpoints, resume
    distributed.py  the same loop on several workers (tf.distribute, from TF_CONFIG)
    export.py       the SavedModel that serves with plain TensorFlow
    checkpoint.py   reads the SavedModel's variables with NumPy (TensorFlow's checkpoint format)
    title_tokens.py the title layers' word and trigram ids in pure Python
    numpy_query.py  the query tower in NumPy: what a fitted or loaded model answers with
    bundle.py       the bundle folder (BUNDLE_DIR/two_tower/): layout, write, read
    recommender.py  TwoTowerRecommender: fit / candidates / recommend / save / load

Importing the package does not import TensorFlow; the files defining TensorFlow classes (towers, retrieval,
export, lazy_adam) are imported when a model is trained, saved or exported. Loading a bundle and answering
queries never import it (``numpy_query.py``).
"""

from modules.errors import BundleError
from modules.two_tower.bundle import BUNDLE_FORMAT, BUNDLE_SUBDIR, REQUIRED_FILES
from modules.two_tower.config import OPTIMIZERS, TwoTowerConfig
from modules.two_tower.optimizer import LAZY_ADAM_FROM_TRACKS, make_optimizer, optimizer_name
from modules.two_tower.recommender import TwoTowerRecommender

__all__ = ["BUNDLE_FORMAT", "BUNDLE_SUBDIR", "LAZY_ADAM_FROM_TRACKS", "OPTIMIZERS", "REQUIRED_FILES", "BundleError",
           "LazyAdam", "TwoTowerConfig", "TwoTowerRecommender", "make_optimizer", "optimizer_name"]


def __getattr__(name):
    # LazyAdam subclasses a Keras optimizer, so it is imported (with TensorFlow) only when asked for.
    if name == "LazyAdam":
        from modules.two_tower.lazy_adam import LazyAdam

        return LazyAdam
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
