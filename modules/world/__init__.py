"""The playlist world: MPD-format playlists generated over a real track catalog, in two shapes.

* ``catalog`` (the default, ``PlaylistWorld``, ``catalog_shape.py``): taste clusters over the shipped catalog.
* ``mpd`` (``MPDWorld``, ``mpd_shape.py``): the same tastes over a track universe shaped like the MPD's: a
  synthetic long tail (``universe.py``), a chart of hits and themes (``themes.py``).

``write.py`` writes either to slice files. docs/world.md describes both and compares them with the MPD.
"""

from modules.world.catalog_shape import (
    GENERIC_TITLES,
    MAX_TRACKS,
    MIN_ALBUMS,
    MIN_ARTISTS,
    MIN_TRACKS,
    MOODS,
    SLICE_SIZE,
    WORLD_VERSION,
    PlaylistWorld,
)
from modules.world.mpd_shape import MPD_WORLD_VERSION, MPDWorld
from modules.world.themes import THEMES, Theme
from modules.world.write import SHAPES, write_world

__all__ = ["GENERIC_TITLES", "MAX_TRACKS", "MIN_ALBUMS", "MIN_ARTISTS", "MIN_TRACKS", "MOODS", "MPDWorld",
           "MPD_WORLD_VERSION", "PlaylistWorld", "SHAPES", "SLICE_SIZE", "THEMES", "Theme", "WORLD_VERSION",
           "write_world"]
