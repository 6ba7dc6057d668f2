"""Every exception class of the package, in one place.

**User errors.** What a user can cause and fix (a malformed file, a bad option, an input that does not exist, an
output folder that is not ours to replace) derives from ``UserError``; the command line prints those as one line
(``error: …``, exit status 2) and lets anything else (a bug in this code) show its traceback. Each class also
derives from the built-in exception it refines (``ValueError``, ``FileNotFoundError``, ``FileExistsError``), so
code that catches those keeps working. The four kinds are ``InputError`` (a value that cannot be used),
``MissingInputError`` (a path that does not exist), ``OutputError`` (a path writing would destroy) and
``BundleError`` (a bundle that cannot be loaded); each part of the package raises its own subclass of one of them,
so a message says which part refused.

A message names where the problem is (file, playlist, field, option), what was received, and what to do.

**Not user errors.** ``NotFittedError`` (a model used before ``fit``/``load``: a bug in the calling code) and the
Spotify client's internal signals (``SpotifyUnavailable``, ``SpotifyForbidden``: caught inside
``modules.spotify``, which then answers from the feature store; they never reach a caller).

Import them from here. The packages whose users catch them re-export theirs (``from modules.rules import
RulesError`` works too).
"""

from __future__ import annotations

# -- the four kinds of user error -----------------------------------------------------------------------------


class UserError(Exception):
    """Base of every error caused by the user's input, not by this code."""


class InputError(UserError, ValueError):
    """A value given by the user (an option, a parameter, a field of a file) that cannot be used."""


class MissingInputError(UserError, FileNotFoundError):
    """An input file or folder that does not exist."""


class OutputError(UserError, FileExistsError):
    """An output path that writing would destroy or cannot use: refused before any work is done."""


class BundleError(InputError):
    """A bundle that cannot be loaded: missing files, another format, a part that does not match this code."""


# -- each part's user errors, by the stage of the data flow (ingest → train → bundle → recommend → app/service) --


class MPDFormatError(InputError):
    """A file that breaks the MPD format (or one of ours: truth, track artists), with where and what
    (``modules.mpd``)."""

    def __init__(self, file, message, *, index=None, pid=None, field=None):
        self.file, self.index, self.pid, self.field = str(file), index, pid, field
        where = [self.file]
        if index is not None:
            where.append(f"playlist #{index}")
        if pid is not None:
            where.append(f"pid {pid}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}")


class StoreError(InputError):
    """A path that is not a usable playlist store (``modules.store``)."""


class CatalogError(InputError):
    """A catalog file that cannot be read as a track catalog (``modules.catalog``)."""


class FeatureStoreError(InputError):
    """A path that is not a usable feature store, or input it cannot take (``modules.features``)."""


class SplitError(InputError):
    """The data cannot give the split asked for (``modules.challenge``)."""


class RulesError(InputError):
    """Bad parameters or data for rule mining and scoring (``modules.rules``)."""


class MemoryBudgetError(RulesError):
    """The mlxtend engine would need more memory than the budget allows; nothing was run (``modules.rules``)."""


class SparkError(InputError):
    """Spark cannot run what was asked: no Java or PySpark, a bad master, a session on another master
    (``modules.spark``)."""


class ClusterError(InputError):
    """A training on several workers cannot go on: a bad ``TF_CONFIG`` (``modules.tf_config``), or a worker of the
    cluster lost mid-training (``modules.two_tower.distributed``: run the same command again on every worker)."""


class ContentError(InputError):
    """Input the content model cannot use (``modules.content``)."""


class HybridError(InputError):
    """Bad parameters or data for the hybrid recommender (``modules.hybrid``)."""


class FusionFormatError(BundleError):
    """A fusion model that cannot be written as arrays, or arrays that do not describe one
    (``modules.hybrid.fusion_arrays``)."""


class QueryTypeError(InputError, TypeError):
    """A query field of the wrong type (one string for the seed list, a list for the weights) (``modules.query``)."""


class ServiceError(InputError):
    """A service that cannot start: no bundle, no SavedModel, bad limits (``modules.service``)."""


class ExploreError(InputError):
    """Input the app helpers cannot use: a file that is not what it should be, a bad argument
    (``modules.explore``)."""


# -- not the user's doing ----------------------------------------------------------------------------------------


class NotFittedError(RuntimeError):
    """A recommender used before ``fit`` (or ``load``): a bug in the calling code, as in scikit-learn."""


class SpotifyUnavailable(Exception):
    """The Spotify API could not answer now (offline, rate-limited beyond our patience, 5xx, timeout).

    Internal to ``SpotifyClient``, which catches it and answers offline."""


class SpotifyForbidden(Exception):
    """403: the Spotify endpoint is closed to this app. Internal to ``SpotifyClient``, which catches it."""
