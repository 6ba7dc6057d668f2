"""Themes of the MPD-shaped world: holidays, decades and events, the playlists the catalog world lacks.

A theme is a taste pool of its own: catalog tracks whose names say it (``keywords``: "Christmas", "Santa", …)
weigh ``KEYWORD_BOOST`` times more, tracks of its ``genres`` come next, an optional mood tilts the rest, and the
synthetic long tail has a pool per theme whose track names use its ``words``. Titles say the theme
("christmas", "80s", "road trip"), so a title predicts the tracks, as in the MPD, whose most common titles
include "christmas", "oldies", "workout" and "party".

The catalog carries no release year, so decade themes lean on the genres of their time (disco and funk for
the 70s, synth-pop for the 80s, grunge for the 90s, …) and on their own synthetic pools.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KEYWORD_BOOST = 40.0


@dataclass(frozen=True)
class Theme:
    """One theme: ``kind`` is holiday, decade or event; ``weight`` its share of themed playlists."""

    name: str
    kind: str
    weight: float
    titles: tuple[str, ...]
    genres: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    mood: str | None = None
    words: tuple[str, ...] = ()

    def keyword_pattern(self) -> re.Pattern | None:
        if not self.keywords:
            return None
        return re.compile(r"\b(" + "|".join(self.keywords) + r")", re.IGNORECASE)


THEMES: tuple[Theme, ...] = (
    # holidays
    Theme("christmas", "holiday", 0.16, ("christmas", "christmas", "christmas music", "xmas", "christmas songs",
                                         "holiday", "holidays", "christmas playlist", "christmas 2017"),
          genres=("soul", "jazz", "pop", "country", "children", "singer-songwriter"),
          keywords=("christmas", "xmas", "santa", "jingle", "noel", "navidad", "sleigh", "mistletoe", "reindeer",
                    "holiday", "snow", "winter wonderland", "silent night", "feliz"),
          mood="happy", words=("christmas", "snow", "santa", "mistletoe", "winter", "holiday", "sleigh bells")),
    Theme("halloween", "holiday", 0.05, ("halloween", "halloween party", "spooky", "halloween 2017", "spooky szn"),
          genres=("goth", "industrial", "rock", "metal", "children"),
          keywords=("halloween", "monster", "ghost", "zombie", "witch", "spooky", "thriller", "haunted", "vampire",
                    "devil", "creep", "scream", "graveyard"),
          mood="party", words=("halloween", "ghost", "monster", "midnight", "haunted", "witch")),
    Theme("summer", "holiday", 0.10, ("summer", "summer 2017", "summer vibes", "summer jams", "beach", "pool party",
                                      "summer 2016", "summertime"),
          genres=("reggae", "reggaeton", "dance", "pop", "latin", "dancehall", "house"),
          keywords=("summer", "sun", "beach", "island", "tropical", "ocean", "vacation"),
          mood="happy", words=("summer", "sunshine", "beach", "island", "july", "waves")),
    Theme("valentines", "holiday", 0.03, ("valentines", "valentine's day", "love songs", "valentines day"),
          genres=("romance", "soul", "r-n-b", "pop", "singer-songwriter"),
          keywords=("love", "valentine", "heart", "kiss"), mood="romance", words=("love", "heart", "kiss", "forever")),
    # decades
    Theme("oldies", "decade", 0.12, ("oldies", "oldies", "classics", "oldies but goodies", "old school", "60s",
                                     "golden oldies", "50s"),
          genres=("rock-n-roll", "rockabilly", "soul", "blues", "honky-tonk", "jazz", "groove"),
          words=("baby", "darling", "sweetheart", "jukebox", "twist", "rock and roll")),
    Theme("70s", "decade", 0.04, ("70s", "70s music", "70s hits", "disco", "classic rock"),
          genres=("disco", "funk", "soul", "psych-rock", "hard-rock", "rock"),
          words=("disco", "boogie", "groove", "funky", "freedom")),
    Theme("80s", "decade", 0.07, ("80s", "80s", "80s music", "80s hits", "80s rock", "80's"),
          genres=("synth-pop", "hard-rock", "power-pop", "heavy-metal", "new-age", "goth"),
          words=("neon", "radio", "cassette", "synth", "arcade", "tonight")),
    Theme("90s", "decade", 0.08, ("90s", "90s", "90s hits", "90s r&b", "90s rock", "90s hip hop", "90's"),
          genres=("grunge", "alt-rock", "r-n-b", "hip-hop", "punk-rock", "dance", "alternative"),
          words=("pager", "mixtape", "flannel", "backstreet", "fresh", "jams")),
    Theme("2000s", "decade", 0.08, ("throwback", "throwbacks", "2000s", "throwback jams", "early 2000s", "tbt"),
          genres=("emo", "pop", "hip-hop", "punk-rock", "r-n-b", "pop-film"),
          words=("throwback", "ringtone", "myspace", "crunk", "burn", "flip phone")),
    # events
    Theme("wedding", "event", 0.05, ("wedding", "wedding songs", "first dance", "reception", "wedding playlist"),
          genres=("romance", "soul", "pop", "r-n-b", "country"),
          keywords=("love", "wedding", "marry", "forever", "bride", "always"), mood="romance",
          words=("love", "forever", "wedding", "always", "vows")),
    Theme("road trip", "event", 0.07, ("road trip", "roadtrip", "road trip", "car songs", "drive", "driving"),
          genres=("rock", "country", "pop", "alt-rock", "indie", "folk"),
          keywords=("road", "highway", "drive", "ride", "car", "miles"), mood="happy",
          words=("highway", "road", "miles", "drive", "west", "ride")),
    Theme("graduation", "event", 0.02, ("graduation", "grad party", "class of 2017", "senior year"),
          genres=("pop", "hip-hop", "dance", "indie-pop"),
          keywords=("school", "forever young", "memories", "goodbye"), mood="happy",
          words=("memories", "goodbye", "forever", "class", "summer")),
    Theme("camping", "event", 0.02, ("camping", "campfire", "bonfire", "cabin"),
          genres=("folk", "bluegrass", "country", "acoustic", "singer-songwriter"), mood="chill",
          words=("campfire", "mountain", "river", "pine", "stars")),
    Theme("study", "event", 0.06, ("study", "studying", "study music", "homework", "finals", "focus"),
          genres=("study", "classical", "piano", "ambient", "new-age", "idm"), mood="focus",
          words=("focus", "library", "pages", "quiet", "rain")),
    Theme("worship", "event", 0.05, ("worship", "church", "praise", "gospel", "sunday"),
          genres=("gospel", "singer-songwriter", "acoustic"),
          keywords=("god", "jesus", "lord", "grace", "praise", "holy", "hallelujah"),
          words=("grace", "praise", "glory", "hallelujah", "faith")),
)


def theme_names() -> list[str]:
    return [t.name for t in THEMES]
