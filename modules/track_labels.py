"""``TrackLabels``: track URI -> ``"Name by Artist"``, made when asked instead of held for every track.

A ``Recommender`` used to hold this as a dict over its whole tracks table: at 1M playlists 2.28 M keys and 2.28 M
new strings, ≈ 0.5 GiB of a serving process, for labels read a few dozen at a time (rule explanations, the app).
The mapping reads the tracks table's name and artist columns (Arrow strings under pandas 3: no Python object per
track) and answers what the dict answered, ``NaN`` where the name or the artist is missing included.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pandas as pd


class TrackLabels(Mapping):
    """Read-only mapping of the tracks' URIs (``keys``, a unique ``pandas.Index``) to ``name + " by " + artist``
    (``names``, ``artists``: sequences in the order of ``keys``)."""

    def __init__(self, keys: pd.Index, names, artists):
        if not keys.is_unique:
            raise ValueError("TrackLabels needs unique track URIs; build a dict for a table with repeats.")
        self._keys, self._names, self._artists = keys, names, artists

    def __getitem__(self, uri: str):
        try:
            row = self._keys.get_loc(uri)
        except (TypeError, pd.errors.InvalidIndexError):
            raise KeyError(uri) from None
        name, artist = self._names[row], self._artists[row]
        if pd.isna(name) or pd.isna(artist):
            return float("nan")  # what the string sum gave (``Series + " by " + Series``)
        return name + " by " + artist

    def __contains__(self, uri) -> bool:
        try:
            return uri in self._keys
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)
