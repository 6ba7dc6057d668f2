"""Feature preparation: how the catalog and the training playlists become the content model's track vectors.

``ContentModel.fit`` calls these in order: ``track_rows`` (catalog ∪ store tracks, URI-sorted),
``standardize_audio`` (the numeric vectors: audio features standardized on the catalog and clipped),
``tag_vectors`` (the text vectors: sublinear TF-IDF over artists, albums, genres and playlist-title words,
weighted by group and L2-normalized) and ``track_names``. ``title_tokens`` is also how a query's title is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.preprocessing import normalize

from modules.errors import ContentError

_NON_WORD = re.compile(r"[^\w&]+")
# n-grams that start or end with one of these say nothing the single words do not ("best of", "of anime")
_NGRAM_EDGE_STOP = frozenset({"a", "an", "and", "&", "best", "for", "in", "my", "of", "on", "the", "to"})


def title_tokens(title: str | None, ngrams: int = 2) -> list[str]:
    """Normalized words of a playlist title and their n-grams up to ``ngrams``.

    >>> title_tokens("Chill Vibes!!")
    ['chill', 'vibes', 'chill vibes']
    """
    words = _NON_WORD.sub(" ", str(title or "").lower().replace("_", " ")).split()
    out = list(words)
    for n in range(2, ngrams + 1):
        out += [" ".join(words[i:i + n]) for i in range(len(words) - n + 1)
                if words[i] not in _NGRAM_EDGE_STOP and words[i + n - 1] not in _NGRAM_EDGE_STOP]
    return out


def _catalog_frame(catalog) -> pd.DataFrame:
    """The track catalog as a ``read_catalog``-shaped frame (from a frame, a FeatureStore, a path or None)."""
    from modules.catalog import read_catalog
    from modules.features import FeatureStore

    if isinstance(catalog, pd.DataFrame):
        frame = catalog
    elif isinstance(catalog, FeatureStore):
        frame = catalog.read_all()
        frame = frame.assign(artists=frame["artists"].fillna(frame["artist_name"]).fillna(""))
    else:
        frame = read_catalog(catalog)
    need = {"track_uri", "artists", "genres"} - set(frame.columns)
    if need:
        raise ContentError(f"the catalog lacks columns {sorted(need)} (has {list(frame.columns)}); read it with "
                           "modules.catalog.read_catalog or a FeatureStore.")
    return frame


@dataclass
class Tracks:
    """The model's rows: catalog ∪ store tracks, URI-sorted (row ``i`` is ``uris[i]``).

    ``catalog_rows[j]`` is the row of the catalog frame's ``j``-th track; ``store_uris``/``store_artists``/
    ``store_albums`` are the store's tracks (empty without a store); albums are ``(key, name)`` pairs
    (``album_keys``).
    """

    catalog: pd.DataFrame
    catalog_rows: np.ndarray
    store_uris: np.ndarray
    store_artists: np.ndarray
    uris: np.ndarray
    index: dict
    store_albums: list = None

    @property
    def n(self) -> int:
        return len(self.uris)


def track_rows(catalog, store) -> Tracks:
    """The rows of the model from a catalog (anything ``_catalog_frame`` reads) and a ``PlaylistStore`` or None."""
    cat = _catalog_frame(catalog)
    cat_uris = cat["track_uri"].to_numpy(dtype=object)
    if store is not None:
        st = store.tracks
        st_uris, st_artists = st["track_uri"].to_numpy(dtype=object), st["artist_name"].to_numpy(dtype=object)
        st_albums = album_keys(st)
    else:
        st_uris = st_artists = np.array([], dtype=object)
        st_albums = []
    uris = np.unique(np.concatenate([cat_uris, st_uris]).astype(str)).astype(object)
    index = {u: i for i, u in enumerate(uris.tolist())}
    cat_rows = np.fromiter((index[u] for u in cat_uris), dtype=np.int64, count=len(cat_uris))
    return Tracks(cat, cat_rows, st_uris, st_artists, uris, index, st_albums)


def album_keys(frame: pd.DataFrame) -> list[tuple[str, str] | None]:
    """``(key, name)`` of each row's album, ``None`` where the row names none.

    The key is the ``album_uri`` when the row has one, else derived from the artist and album names the way the
    catalog derives its album URIs (``modules.catalog.derive_uri``), so real MPD subsets without album URIs still
    group a track with its album, and an album of the catalog and the same album in the store share a key.
    """
    from modules.catalog import derive_uri

    n = len(frame)
    names = frame["album_name"].tolist() if "album_name" in frame.columns else [None] * n
    uris = frame["album_uri"].tolist() if "album_uri" in frame.columns else [None] * n
    artists = frame["artist_name"].tolist() if "artist_name" in frame.columns else [None] * n
    out: list[tuple[str, str] | None] = []
    for name, uri, artist in zip(names, uris, artists, strict=True):
        name = name.strip() if isinstance(name, str) else ""
        uri = uri.strip() if isinstance(uri, str) else ""
        if not uri and name:
            uri = derive_uri("album", artist if isinstance(artist, str) else "", name)
        out.append((uri, name or uri) if uri else None)
    return out


def standardize_audio(tracks: Tracks, feats: list[str], clip: float):
    """The numeric side: ``(has_num, mean, scale, numeric)``.

    A ``StandardScaler`` fitted on the catalog rows that have every feature (``mean``, ``scale``: shape
    ``(n_features,)``; a constant feature gets scale 1 and stays 0); ``numeric`` is float32
    ``[n_tracks, n_features]``, standardized and clipped to ``[-clip, clip]``, zeros where ``has_num`` is False.
    """
    cat, n = tracks.catalog, tracks.n
    missing = [f for f in feats if f not in cat.columns]
    if missing:
        raise ContentError(f"the catalog lacks the audio features {missing}; pass features=[...] without them "
                           "or a catalog that has them.")
    raw = np.full((n, len(feats)), np.nan)
    raw[tracks.catalog_rows] = cat[feats].to_numpy(dtype=np.float64)
    has_num = ~np.isnan(raw).any(axis=1)
    if not has_num.any():
        raise ContentError(f"no catalog track has all of the features {feats}; pass a catalog with audio "
                           "features (the shipped data/spotify_tracks has them).")
    mean = raw[has_num].mean(axis=0)
    scale = raw[has_num].std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)  # as StandardScaler: constant features stay 0
    z = np.zeros_like(raw)
    z[has_num] = np.clip((raw[has_num] - mean) / scale, -clip, clip)
    return has_num, mean, scale, z.astype(np.float32)


@dataclass
class TagVectors:
    """The text side: ``text`` (float32 CSR ``[n_tracks, n_tokens]``, rows L2-normalized), ``idf``, ``vocab``
    (tokens prefixed ``a:``, ``g:``, ``t:``), ``labels`` (as a listener reads them) and ``sizes`` (number of
    artist, genre and title tokens)."""

    text: sparse.csr_matrix
    idf: np.ndarray
    vocab: np.ndarray
    labels: np.ndarray
    sizes: tuple[int, int, int, int]


def tag_vectors(tracks: Tracks, store, pids, *, artist_weight: float, genre_weight: float, title_weight: float,
                title_ngrams: int, min_title_count: int, album_weight: float = 0.0) -> TagVectors:
    """Artist, genre, title-word and album counts -> sublinear TF × IDF -> group weights -> L2, one row per
    track. The album group is built only when ``album_weight`` > 0 (a zero-weight group changes nothing)."""
    n, index, cat, cat_rows = tracks.n, tracks.index, tracks.catalog, tracks.catalog_rows
    artist_lists: list[list[str]] = [[] for _ in range(n)]
    for r, s in zip(cat_rows.tolist(), cat["artists"].tolist(), strict=True):
        artist_lists[r] = [a.strip() for a in str(s).split(";") if a.strip()]
    for u, a in zip(tracks.store_uris.tolist(), tracks.store_artists.tolist(), strict=True):
        if not artist_lists[index[u]] and isinstance(a, str) and a.strip():
            artist_lists[index[u]] = [a.strip()]
    genre_lists: list[list[str]] = [[] for _ in range(n)]
    for r, g in zip(cat_rows.tolist(), cat["genres"].tolist(), strict=True):
        genre_lists[r] = [str(x) for x in g] if g is not None else []
    a_counts, a_keys, a_labels = _bag(artist_lists, n, key=str.lower)
    g_counts, g_keys, g_labels = _bag(genre_lists, n, key=str.lower)
    t_counts, t_keys = title_tag_counts(store, pids, index, n, title_ngrams, min_title_count)
    l_counts, l_keys, l_labels = album_tag_counts(tracks) if album_weight > 0 else (sparse.csr_matrix((n, 0)), [], [])
    counts = sparse.hstack([a_counts, g_counts, t_counts, l_counts], format="csr", dtype=np.float64)
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0  # scikit-learn's smooth idf
    group = np.concatenate([np.full(len(a_keys), artist_weight), np.full(len(g_keys), genre_weight),
                            np.full(len(t_keys), title_weight), np.full(len(l_keys), album_weight)])
    tf = counts.copy()
    tf.data = 1.0 + np.log(tf.data)  # sublinear: a tag in 100 playlists is not 100 times the tag
    text = normalize(tf @ sparse.diags(idf * group), norm="l2").astype(np.float32).tocsr()
    text.eliminate_zeros()
    vocab = np.array([f"a:{k}" for k in a_keys] + [f"g:{k}" for k in g_keys] + [f"t:{k}" for k in t_keys]
                     + [f"l:{k}" for k in l_keys], dtype=object)
    labels = np.array(list(a_labels) + list(g_labels) + list(t_keys) + list(l_labels), dtype=object)
    return TagVectors(text, idf, vocab, labels, (len(a_keys), len(g_keys), len(t_keys), len(l_keys)))


def album_tag_counts(tracks: Tracks) -> tuple[sparse.csr_matrix, list[str], list[str]]:
    """``[n_tracks, n_albums]`` 0/1: each track's album (the catalog's wins over the store's; none where neither
    names one). An album of one track is no tag: it cannot relate two tracks."""
    album_of: list[tuple[str, str] | None] = [None] * tracks.n
    for u, a in zip(tracks.store_uris.tolist(), tracks.store_albums or [], strict=False):
        if a is not None:
            album_of[tracks.index[u]] = a
    for r, a in zip(tracks.catalog_rows.tolist(), album_keys(tracks.catalog), strict=True):
        if a is not None:
            album_of[r] = a
    label: dict[str, str] = {}
    for a in album_of:
        if a is not None:
            label.setdefault(a[0], a[1])
    keys = sorted(label)
    col = {k: i for i, k in enumerate(keys)}
    rows = [r for r, a in enumerate(album_of) if a is not None]
    cols = [col[album_of[r][0]] for r in rows]
    m = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(tracks.n, len(keys)))
    keep = np.flatnonzero(np.asarray(m.sum(axis=0)).ravel() >= 2)
    return m[:, keep].tocsr(), [keys[i] for i in keep], [label[keys[i]] for i in keep]


def title_tag_counts(store, pids, index: dict, n: int, ngrams: int,
                     min_count: int) -> tuple[sparse.csr_matrix, list[str]]:
    """``[n_tracks, n_title_tags]``: in how many training playlists each track sits under each title tag.

    A title word or n-gram (up to ``ngrams`` words) is a tag when at least ``min_count`` playlists use it.
    """
    if store is None:
        return sparse.csr_matrix((n, 0)), []
    inter = store.interactions(pids)
    names = store.playlists.set_index("pid")["name"]
    titles = names.reindex(inter.pids).fillna("").tolist()
    token_lists = [sorted(set(title_tokens(t, ngrams))) for t in titles]
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for r, toks in enumerate(token_lists):
        for t in toks:
            rows.append(r)
            cols.append(vocab.setdefault(t, len(vocab)))
    w = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(titles), len(vocab)))
    keep = np.flatnonzero(np.asarray(w.sum(axis=0)).ravel() >= min_count)
    keys = np.array(list(vocab), dtype=object)[keep]
    order = np.argsort(keys.astype(str), kind="stable")
    keep, keys = keep[order], keys[order]
    per_track = (inter.matrix.T.tocsr() @ w[:, keep]).tocsr()  # [store tracks, tags]
    rows_in_model = np.fromiter((index[u] for u in inter.track_uris.tolist()), dtype=np.int64,
                                count=len(inter.track_uris))
    place = sparse.csr_matrix((np.ones(len(rows_in_model)), (rows_in_model, np.arange(len(rows_in_model)))),
                              shape=(n, len(rows_in_model)))
    return (place @ per_track).tocsr(), keys.tolist()


def _bag(lists: list[list[str]], n: int, key=str.lower) -> tuple[sparse.csr_matrix, list[str], list[str]]:
    """Count matrix ``[n, n_keys]`` of token lists; keys sorted; labels = first spelling seen of each key."""
    labels: dict[str, str] = {}
    for toks in lists:
        for t in toks:
            labels.setdefault(key(t), t)
    keys = sorted(labels)
    col = {k: i for i, k in enumerate(keys)}
    rows, cols = [], []
    for r, toks in enumerate(lists):
        for t in toks:
            rows.append(r)
            cols.append(col[key(t)])
    m = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(keys)))
    m.sum_duplicates()
    return m, keys, [labels[k] for k in keys]


def track_names(tracks: Tracks, store) -> np.ndarray:
    """"Title — artists" per row (the catalog's spelling wins over the store's; "" when neither has it)."""
    index, cat, cat_rows = tracks.index, tracks.catalog, tracks.catalog_rows
    names = np.full(tracks.n, "", dtype=object)
    if store is not None:
        st_uris, st_artists = tracks.store_uris, tracks.store_artists
        st_names = store.tracks["track_name"].fillna("").astype(str) + " — " + pd.Series(st_artists).fillna("")
        names[np.fromiter((index[u] for u in st_uris), dtype=np.int64, count=len(st_uris))] = st_names.to_numpy()
    if "track_name" in cat.columns:
        artists = cat["artists"].astype(str).str.replace(";", ", ", regex=False)
        names[cat_rows] = (cat["track_name"].fillna("").astype(str) + " — " + artists).to_numpy()
    return names
