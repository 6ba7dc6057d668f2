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


def _pooled(values, pool) -> bool:
    """Whether every string of ``values`` that the pool holds is the pool's own object (and it holds some)."""
    own = {u: u for u in pool.uris.tolist()}
    held = [v for v in values if v in own]
    return bool(held) and all(v is own[v] for v in held)


def test_each_part_shares_the_pools_strings_and_answers_the_same(tiny_bundle):
    """``share_uris`` of each part of a bundle: its URI arrays (and the dicts and indexes over them) hold the pool's
    strings, and it answers exactly as before."""
    from modules.hybrid.sources.als import load_als
    from modules.hybrid.sources.content import load_content
    from modules.hybrid.sources.rules import load_rules
    from modules.hybrid.sources.two_tower import load_two_tower

    tt, rules = load_two_tower(tiny_bundle), load_rules(tiny_bundle, None)
    content, als = load_content(tiny_bundle), load_als(tiny_bundle)
    pool = UriPool(fresh(sorted({*tt.items_.uris, *rules.rules.track_uris, *content.uris_, *als.matrix_.uris})))
    seeds = [str(u) for u in als.matrix_.uris[:3]] + [str(u) for u in rules.rules.track_uris[:3]]
    candidates = [str(u) for u in content.uris_[::7]]

    def answers():
        found = rules.score(seeds, k=40)
        return [*tt.candidates(seeds, "chill", n=40), found.uris, found.scores, found.ids,
                *content.nearest(seeds, k=40), content.rows_of(candidates), *als.recommend(seeds, k=40)]

    before = answers()
    assert not _pooled(als.matrix_.uris, pool) and not _pooled(content.uris_, pool)  # each part's own strings
    for part in (tt, rules, content, als):
        part.share_uris(pool)
    assert _pooled(tt.items_.uris, pool) and _pooled(tt.candidate_uris_, pool) and _pooled(tt.items_.index, pool)
    assert _pooled(tt.items_.track_vocab, pool) and isinstance(tt.items_.track_vocab, list)
    assert len(tt.candidate_uris_) == tt.items_.n_candidates
    assert _pooled(rules.rules.track_uris, pool) and _pooled(rules.index_, pool)
    assert _pooled(content.uris_, pool) and _pooled(content.index_, pool) and _pooled(content._uri_index(), pool)
    assert _pooled(als.matrix_.uris, pool) and _pooled(als.matrix_.index, pool)
    for a, b in zip(before, answers(), strict=True):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_a_loaded_hybrids_parts_hold_its_track_strings(tiny_bundle):
    from modules.hybrid import HybridRecommender

    h = HybridRecommender.load(tiny_bundle)
    pool = UriPool(h.track_uris_)
    assert _pooled(h.fallback_, pool) and _pooled(h.two_tower_.items_.uris, pool)
    assert _pooled(h.rules_.rules.track_uris, pool) and _pooled(h.content_.uris_, pool)
    assert _pooled(h.als_.matrix_.uris, pool)
