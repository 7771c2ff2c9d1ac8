"""LSH banding, verification, union-find clustering and the order-independent keep policy."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from synth.dedup import lsh
from synth.dedup import minhash as mh
from synth.errors import ConfigError


def _corpus(n_orig: int = 300, n_dup: int = 40, seed: int = 0) -> tuple[list[str], list[tuple[int, int]]]:
    """Unrelated documents plus near-copies (about 1 word in 100 changed) of some of them."""
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(5000)]
    docs = [" ".join(rng.choice(vocab) for _ in range(rng.randint(60, 200))) for _ in range(n_orig)]
    planted = []
    for k in range(n_dup):
        words = docs[k].split()
        for _ in range(max(1, len(words) // 100)):
            words[rng.randrange(len(words))] = "CHANGED"
        docs.append(" ".join(words).upper())
        planted.append((k, n_orig + k))
    return docs, planted


@pytest.mark.parametrize(("threshold", "num_perm"), [(0.8, 128), (0.5, 64), (0.9, 256), (0.7, 128), (0.95, 32)])
def test_band_choice_meets_stated_recall(threshold: float, num_perm: int) -> None:
    p = lsh.lsh_params(threshold, num_perm, target_recall=0.95)
    assert p.bands * p.rows <= num_perm
    assert p.recall_at_threshold >= 0.95
    assert p.recall_at_threshold == pytest.approx(1 - (1 - threshold**p.rows) ** p.bands)
    # minimal: one band fewer, or one row more per band, is more selective but misses the target
    assert lsh.candidate_probability(threshold, p.bands - 1, p.rows) < 0.95
    assert lsh.candidate_probability(threshold, p.bands, p.rows + 1) < 0.95


def test_band_choice_beats_datasketch_default_at_threshold() -> None:
    ours = lsh.lsh_params(0.8, 128)
    assert lsh.candidate_probability(0.8, 9, 13) < 0.45  # datasketch's weighted optimum for 128/0.8
    assert ours.recall_at_threshold >= 0.95
    with pytest.raises(ConfigError, match="threshold"):
        lsh.lsh_params(1.0, 128)


def test_finds_planted_near_duplicates_and_nothing_else() -> None:
    docs, planted = _corpus()
    sig = mh.text_signatures(docs)
    cl = lsh.near_duplicate_clusters(sig, threshold=0.8)
    for i, j in planted:
        assert cl.labels[i] == cl.labels[j]
    found = {tuple(p) for p in cl.pairs.tolist()}
    assert found == set(planted)
    sizes = np.bincount(cl.labels)
    assert sizes.max() == 2 and (sizes == 2).sum() == len(planted)
    assert np.all(cl.jaccard >= 0.8)


def test_exact_verification_rejects_pairs_below_threshold() -> None:
    rng = random.Random(1)
    base = [f"t{rng.randrange(10**6)}" for _ in range(200)]
    near = list(base)
    for k in range(20, 200, 40):  # 5 interior edits, 25 of 196 shingles changed: exact J ~ 0.77
        near[k] = "edit"
    docs = [" ".join(base), " ".join(near)]
    exact = float(mh.exact_jaccard(docs, np.array([[0, 1]]))[0])
    assert exact < 0.8
    cl = lsh.near_duplicate_clusters(mh.text_signatures(docs), 0.8, target_recall=0.999, similarity=lambda p: mh.exact_jaccard(docs, p))
    assert cl.labels[0] != cl.labels[1]


def test_huge_buckets_are_capped_but_stay_connected() -> None:
    sig = np.tile(mh.text_signatures(["one and the same document text here"]), (60, 1))
    params = lsh.lsh_params(0.8, sig.shape[1])
    cand = lsh.candidate_pairs(sig, params, window=3)
    assert len(cand) <= 60 * 3
    assert np.all(cand[:, 0] < cand[:, 1])
    labels = lsh.near_duplicate_clusters(sig, 0.8, window=3).labels
    assert np.all(labels == 0)


def test_empty_documents_are_not_clustered() -> None:
    sig = mh.text_signatures(["", "!!!", "", "some words"])
    assert lsh.near_duplicate_clusters(sig).labels.tolist() == [0, 1, 2, 3]


def test_partition_does_not_depend_on_row_order() -> None:
    docs, _ = _corpus(n_orig=150, n_dup=30, seed=4)
    docs += [docs[0] + " extra words", docs[0] + " more words"]  # a cluster of more than two
    sig = mh.text_signatures(docs)

    def partition(order: np.ndarray) -> set[frozenset[int]]:
        labels = lsh.near_duplicate_clusters(sig[order]).labels
        groups: dict[int, set[int]] = {}
        for row, lab in enumerate(labels.tolist()):
            groups.setdefault(lab, set()).add(int(order[row]))
        return {frozenset(g) for g in groups.values()}

    ref = partition(np.arange(len(docs)))
    assert any(len(g) >= 3 for g in ref)
    rng = np.random.default_rng(0)
    for _ in range(3):
        assert partition(rng.permutation(len(docs))) == ref


def test_connected_components_and_set_jaccard() -> None:
    labels = lsh.connected_components(6, np.array([[4, 5], [1, 2], [2, 4]]))
    assert labels.tolist() == [0, 1, 1, 3, 1, 1]
    values = np.array([1, 2, 3, 2, 3, 4, 9], dtype=np.uint32)
    offsets = np.array([0, 3, 6, 7, 7])
    got = lsh.set_jaccard(values, offsets, np.array([[0, 1], [0, 2], [3, 3]]))
    assert got.tolist() == [0.5, 0.0, 0.0]


def test_keep_policy_real_then_quality_then_id() -> None:
    labels = np.array([0, 0, 0, 0, 4, 4, 4, 7])
    ids = np.array(["d", "c", "b", "a", "z", "y", "x", "solo"])
    is_real = np.array([False, True, True, False, False, False, False, False])
    quality = np.array([9.0, 0.1, 0.5, np.nan, np.nan, 0.2, np.nan, np.nan])
    rep = lsh.choose_representatives(labels, ids, is_real, quality)
    assert ids[rep].tolist() == ["b", "b", "b", "b", "y", "y", "y", "solo"]
    rep = lsh.choose_representatives(labels, ids)  # no origin, no scores: smallest id
    assert ids[rep].tolist() == ["a", "a", "a", "a", "x", "x", "x", "solo"]
    cluster, dup = lsh.dedup_columns(ids, rep)
    assert cluster == ["a", "a", "a", "a", "x", "x", "x", None]
    assert dup == ["a", "a", "a", None, "x", "x", None, None]
    with pytest.raises(ConfigError, match="unique"):
        lsh.choose_representatives(labels, ["a"] * 8)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 4), st.booleans(), st.one_of(st.none(), st.floats(-2, 2, allow_nan=False))),
        min_size=1,
        max_size=30,
    ),
    seed=st.integers(0, 2**16),
)
def test_keep_policy_is_independent_of_input_order(rows, seed) -> None:
    n = len(rows)
    ids = np.array([f"id{k:03d}" for k in range(n)])
    cluster = np.array([r[0] for r in rows])
    real = np.array([r[1] for r in rows])
    quality = np.array([np.nan if r[2] is None else r[2] for r in rows])
    kept = ids[lsh.choose_representatives(cluster, ids, real, quality)]
    perm = np.random.default_rng(seed).permutation(n)
    kept_perm = ids[perm][lsh.choose_representatives(cluster[perm], ids[perm], real[perm], quality[perm])]
    assert dict(zip(ids[perm].tolist(), kept_perm.tolist())) == dict(zip(ids.tolist(), kept.tolist()))
    for c in set(cluster.tolist()):  # the kept row is the best of its cluster
        members = np.flatnonzero(cluster == c)
        best = min(members, key=lambda k: (not real[k], -(quality[k] if quality[k] == quality[k] else -np.inf), ids[k]))
        assert kept[members[0]] == ids[best]


def test_empty_and_single_inputs_and_bad_pairs() -> None:
    none = lsh.near_duplicate_clusters(mh.text_signatures([]))
    assert none.labels.shape == (0,) and none.pairs.shape == (0, 2)
    assert lsh.choose_representatives(none.labels, []).shape == (0,)
    assert lsh.near_duplicate_clusters(mh.text_signatures(["only one"])).labels.tolist() == [0]
    with pytest.raises(ConfigError, match="pair indices"):
        lsh.connected_components(3, np.array([[0, 5]]))
    with pytest.raises(ConfigError, match="pair indices"):
        lsh.estimated_jaccard(mh.text_signatures(["a", "b"]), np.array([[-1, 1]]))
