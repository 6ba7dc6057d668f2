"""``UriPool``: a part's URIs come back equal, in their order, as the pool's own string objects."""

import numpy as np

from modules.uri_pool import UriPool


def fresh(strings):
    """Equal strings that are new objects (what reading another file of the bundle gives)."""
    return np.array(["".join(list(s)) for s in strings], dtype=object)


def test_share_returns_equal_values_made_of_the_pools_strings():
    base = [f"spotify:track:{i:022d}" for i in range(50)]
    pool = UriPool(fresh(base))
    same = pool.share(fresh(base))
    assert same is pool.uris  # the same tracks in the same order: the pool's array itself
    longer = fresh(base + ["spotify:track:only-here"])
    got = pool.share(longer)
    assert got.tolist() == longer.tolist() and all(a is b for a, b in zip(got[:50], pool.uris))
    assert got[50] is longer[50]
    shuffled = fresh([base[i] for i in np.random.default_rng(0).permutation(50)] + ["spotify:track:other"])
    got = pool.share(shuffled)
    assert got.tolist() == shuffled.tolist()
    assert all(g is pool.uris[base.index(g)] for g in got[:50]) and got[50] is shuffled[50]
    short = fresh(base[:10])
    got = pool.share(short)
    assert got.tolist() == base[:10] and got[3] is pool.uris[3] and got is not pool.uris
    assert pool.share([]).tolist() == []
