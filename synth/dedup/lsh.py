"""LSH banding over MinHash signature matrices, pair verification, clustering and keep policy.

Everything works on arrays: a signature matrix ``uint32 [n, num_perm]`` (from
:mod:`synth.dedup.minhash` or :mod:`synth.dedup.phash`) goes in; candidate pairs
``int64 [p, 2]`` (``i < j``), cluster labels ``int64 [n]`` and representative indices come out.
No Python object is made per document.

Banding: band ``k`` covers signature columns ``[k*rows, (k+1)*rows)``; its rows are hashed to one
uint64 key per document; documents sharing a key in any band are candidates. A pair with Jaccard
``s`` becomes a candidate with probability ``1 - (1 - s**rows)**bands``. :func:`lsh_params` picks
the (bands, rows) that meet a stated recall AT the threshold with the fewest false candidates
below it (datasketch's weighted optimum, 9x13 at 128/0.8, finds only ~40% of pairs at J=0.8).

Buckets are formed by sorting keys; inside a bucket members are ordered by a hash of their whole
signature (content, not input position) and each member is paired with its next ``window``
members, so a bucket of ``k <= window + 1`` members yields all its pairs and a huge bucket yields
at most ``window`` pairs per member: memory stays O(n * window).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache, partial

import numpy as np
from numba import njit

from synth.errors import ConfigError

_EMPTY = np.uint32(0xFFFFFFFF)
_trapezoid = getattr(np, "trapezoid", None) or np.trapz  # numpy < 2 has only trapz


@dataclass(frozen=True)
class LSHParams:
    """A banding choice and what it promises at the threshold."""

    bands: int
    rows: int
    threshold: float
    recall_at_threshold: float  # P(a pair with Jaccard == threshold becomes a candidate)
    false_positive_area: float  # integral of P(candidate) over Jaccard in [0, threshold]


def candidate_probability(s: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """Returns: P(candidate) = 1 - (1 - s**rows)**bands for Jaccard ``s``."""
    return 1.0 - (1.0 - np.asarray(s, dtype=np.float64) ** rows) ** bands


@lru_cache(maxsize=64)
def lsh_params(threshold: float = 0.8, num_perm: int = 128, target_recall: float = 0.95) -> LSHParams:
    """Choose bands x rows for a threshold: recall at the threshold >= target, fewest false hits.

    Reads: the Jaccard threshold, the signature length and the wanted recall at the threshold.
    Returns: the :class:`LSHParams` with ``bands * rows <= num_perm`` whose recall at
    ``threshold`` is >= ``target_recall`` and whose false-positive area is smallest (if no choice
    reaches the target, the one with the highest recall).
    """
    if not 0.0 < threshold < 1.0:
        raise ConfigError(f"threshold must be in (0, 1), got {threshold!r}.")
    if not 0.0 < target_recall < 1.0:
        raise ConfigError(f"target_recall must be in (0, 1), got {target_recall!r}.")
    if num_perm < 1:
        raise ConfigError(f"num_perm must be a positive integer, got {num_perm!r}.")
    grid = np.linspace(0.0, threshold, 257)
    best: tuple[float, float, int, int] | None = None
    fallback: tuple[float, int, int] = (-1.0, 1, 1)
    for rows in range(1, num_perm + 1):
        bands = np.arange(1, num_perm // rows + 1)
        recall = candidate_probability(threshold, bands, rows)
        fp = _trapezoid(1.0 - (1.0 - grid[None, :] ** rows) ** bands[:, None], grid, axis=1)
        ok = np.flatnonzero(recall >= target_recall)
        if ok.size:
            k = ok[np.argmin(fp[ok])]
            cand = (float(fp[k]), -float(recall[k]), int(bands[k]), rows)
            best = cand if best is None or cand < best else best
        k = int(np.argmax(recall))
        if recall[k] > fallback[0]:
            fallback = (float(recall[k]), int(bands[k]), rows)
    bands_, rows_ = (best[2], best[3]) if best is not None else (fallback[1], fallback[2])
    fp_area = float(_trapezoid(candidate_probability(grid, bands_, rows_), grid))
    recall_t = float(candidate_probability(threshold, bands_, rows_))
    return LSHParams(bands_, rows_, threshold, recall_t, fp_area)


@njit(cache=True, nogil=True)
def _mix64(h):
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xFF51AFD7ED558CCD)
    h ^= h >> np.uint64(33)
    h *= np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


@njit(cache=True, nogil=True)
def _row_keys(sig, bands, rows, mult, out):
    """``out[k, i]`` = key of band k of row i: mix64(sum of value * odd multiplier, salted)."""
    for i in range(sig.shape[0]):
        for k in range(bands):
            h = np.uint64(0)
            for c in range(k * rows, (k + 1) * rows):
                h += np.uint64(sig[i, c]) * mult[c]
            out[k, i] = _mix64(h ^ ((np.uint64(k * rows) << np.uint64(32)) | np.uint64(rows)))


@njit(cache=True, nogil=True)
def _member_mask(keys, shared):
    """True where ``keys[i]`` is in ``shared`` (keys are already hashes: their low bits index)."""
    size = 1
    while size < 2 * shared.shape[0]:
        size *= 2
    table = np.zeros(size, dtype=np.uint64)
    used = np.zeros(size, dtype=np.bool_)
    mask = np.uint64(size - 1)
    for v in shared:
        j = v & mask
        while used[j] and table[j] != v:
            j = (j + np.uint64(1)) & mask
        table[j] = v
        used[j] = True
    out = np.zeros(keys.shape[0], dtype=np.bool_)
    for i in range(keys.shape[0]):
        j = keys[i] & mask
        while used[j]:
            if table[j] == keys[i]:
                out[i] = True
                break
            j = (j + np.uint64(1)) & mask
    return out


def _sorted_unique(x: np.ndarray) -> np.ndarray:
    x = np.sort(x)
    return x[np.concatenate(([True], x[1:] != x[:-1]))] if len(x) else x


def _multipliers(n: int) -> np.ndarray:
    """Fixed odd 64-bit multipliers, one per signature column (splitmix64 of the column index)."""
    x = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (x ^ (x >> np.uint64(31))) | np.uint64(1)


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """Returns: uint64 ``[n, bands]``, the key of each band of each signature row.

    A band's key is a multilinear hash of its ``rows`` values (independent multipliers per
    column, then a 64-bit finaliser); ``band_keys(sig, 1, m)`` hashes whole signatures.
    """
    sig = np.ascontiguousarray(signatures, dtype=np.uint32)
    if bands * rows > sig.shape[1]:
        raise ConfigError(f"bands*rows = {bands * rows} exceeds the signature length {sig.shape[1]}.")
    out = np.empty((bands, sig.shape[0]), dtype=np.uint64)
    _row_keys(sig, bands, rows, _multipliers(sig.shape[1]), out)
    return out.T


def _bucket_pairs(keys: np.ndarray, tiebreak: np.ndarray, index: np.ndarray, window: int) -> np.ndarray:
    """Pairs of documents sharing a key: each bucket member with its next ``window`` members.

    Members of a bucket are ordered by ``tiebreak`` (content), then by position. Returns the
    pairs of ``index`` values encoded as ``min << 32 | max`` (uint64), unique and sorted.
    """
    s = np.sort(keys)
    dup = s[1:] == s[:-1]
    if not dup.any():
        return np.empty(0, dtype=np.uint64)
    shared = _sorted_unique(s[1:][dup])  # keys of buckets with two or more members
    sub = np.flatnonzero(_member_mask(np.ascontiguousarray(keys), shared))
    sub = sub[np.lexsort((tiebreak[sub], keys[sub]))]  # content order inside each bucket
    ks = keys[sub]
    out = []
    for d in range(1, min(window, len(sub) - 1) + 1):
        hit = ks[d:] == ks[:-d]
        if not hit.any():
            break
        i, j = index[sub[:-d][hit]], index[sub[d:][hit]]
        lo, hi = np.minimum(i, j).astype(np.uint64), np.maximum(i, j).astype(np.uint64)
        out.append((lo << np.uint64(32)) | hi)
    return _sorted_unique(np.concatenate(out)) if out else np.empty(0, dtype=np.uint64)


def empty_rows(signatures: np.ndarray) -> np.ndarray:
    """Returns: bool ``[n]``, True for empty-set signatures (all ``0xFFFFFFFF``), without an n x m temporary."""
    out = signatures[:, 0] == _EMPTY
    rows = np.flatnonzero(out)
    out[rows] = np.all(signatures[rows] == _EMPTY, axis=1)
    return out


def candidate_pairs(signatures: np.ndarray, params: LSHParams, window: int = 8, skip_empty: bool = True) -> np.ndarray:
    """Candidate pairs from LSH banding (not yet verified).

    Reads: uint32 signatures ``[n, num_perm]``; ``window`` caps pairs per bucket member.
    Returns: int64 ``[p, 2]`` unique pairs ``(i, j)``, ``i < j``, sorted. Rows that are empty-set
    signatures are left out when ``skip_empty`` (an empty document is nobody's near-duplicate).
    """
    sig = np.ascontiguousarray(signatures, dtype=np.uint32)
    n = sig.shape[0]
    if n >= 1 << 32:
        raise ConfigError(f"at most 2**32 - 1 documents per call, got {n}.")
    keys = band_keys(sig, params.bands, params.rows).T  # [bands, n], each band contiguous
    tiebreak = band_keys(sig, 1, sig.shape[1])[:, 0]  # a hash of the whole signature
    index = np.arange(n, dtype=np.int64)
    if skip_empty and n:
        index = np.flatnonzero(~empty_rows(sig))
        if len(index) < n:
            keys, tiebreak = keys[:, index], tiebreak[index]
    if len(index) < 2:
        return np.empty((0, 2), dtype=np.int64)
    code = np.empty(0, dtype=np.uint64)
    for k in range(params.bands):
        new = _bucket_pairs(keys[k], tiebreak, index, window)
        if len(new):
            code = _sorted_unique(np.concatenate((code, new)))
    pairs = np.empty((len(code), 2), dtype=np.int64)
    pairs[:, 0] = (code >> np.uint64(32)).astype(np.int64)
    pairs[:, 1] = (code & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return pairs


@njit(cache=True, nogil=True)
def _pair_jaccard(sig, pairs, out):
    m = sig.shape[1]
    for p in range(pairs.shape[0]):
        i, j = pairs[p, 0], pairs[p, 1]
        eq = 0
        for k in range(m):
            eq += sig[i, k] == sig[j, k]
        out[p] = eq / m


def _checked_pairs(pairs: np.ndarray, n: int) -> np.ndarray:
    """int64 ``[p, 2]`` pairs, refused if an index is outside ``[0, n)`` (the kernels do not check)."""
    pairs = np.ascontiguousarray(pairs, dtype=np.int64).reshape(-1, 2)
    if pairs.size and (pairs.min() < 0 or pairs.max() >= n):
        raise ConfigError(f"pair indices must be in [0, {n}), got [{pairs.min()}, {pairs.max()}].")
    return pairs


def estimated_jaccard(signatures: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Returns: float64 ``[p]``, the fraction of equal signature entries of each pair."""
    sig = np.ascontiguousarray(signatures, dtype=np.uint32)
    out = np.empty(len(pairs), dtype=np.float64)
    _pair_jaccard(sig, _checked_pairs(pairs, sig.shape[0]), out)
    return out


@njit(cache=True, nogil=True)
def _set_jaccard(values, offsets, pairs, out):
    for p in range(pairs.shape[0]):
        i, ie = offsets[pairs[p, 0]], offsets[pairs[p, 0] + 1]
        j, je = offsets[pairs[p, 1]], offsets[pairs[p, 1] + 1]
        union = (ie - i) + (je - j)
        inter = 0
        while i < ie and j < je:
            if values[i] == values[j]:
                inter += 1
                i += 1
                j += 1
            elif values[i] < values[j]:
                i += 1
            else:
                j += 1
        union -= inter
        out[p] = inter / union if union > 0 else 0.0


def set_jaccard(values: np.ndarray, offsets: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Exact Jaccard of pairs of sets stored as sorted unique runs of ``values``.

    Reads: ``values`` (sorted and unique within each set), int64 ``offsets`` ``[n + 1]``, int
    ``pairs`` ``[p, 2]`` of set indices. Returns: float64 ``[p]`` (0.0 for two empty sets).
    """
    out = np.empty(len(pairs), dtype=np.float64)
    pairs = _checked_pairs(pairs, len(offsets) - 1)
    _set_jaccard(np.ascontiguousarray(values), np.ascontiguousarray(offsets, dtype=np.int64), pairs, out)
    return out


@njit(cache=True, nogil=True)
def _find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@njit(cache=True, nogil=True)
def _union_find(n, pairs):
    parent = np.arange(n)
    for p in range(pairs.shape[0]):
        a, b = _find(parent, pairs[p, 0]), _find(parent, pairs[p, 1])
        if a < b:
            parent[b] = a
        elif b < a:
            parent[a] = b
    for i in range(n):
        parent[i] = _find(parent, i)
    return parent


def connected_components(n: int, pairs: np.ndarray) -> np.ndarray:
    """Union-find over edges.

    Returns: int64 ``[n]``, each row's cluster label = the smallest row index in its cluster
    (a singleton is labelled with itself).
    """
    return _union_find(n, _checked_pairs(pairs, n))


@dataclass(frozen=True)
class Clusters:
    """The result of near-duplicate clustering."""

    labels: np.ndarray  # int64 [n]: smallest row index of the cluster
    pairs: np.ndarray  # int64 [e, 2]: verified pairs (the edges that formed the clusters)
    jaccard: np.ndarray  # float64 [e]: their verified similarity (estimated, or from `similarity`)
    n_candidates: int  # candidate pairs before verification
    params: LSHParams


def near_duplicate_clusters(
    signatures: np.ndarray,
    threshold: float = 0.8,
    params: LSHParams | None = None,
    target_recall: float = 0.95,
    window: int = 8,
    skip_empty: bool = True,
    similarity: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Clusters:
    """Cluster near-duplicates: banding -> verify (Jaccard >= threshold) -> union-find.

    Reads: uint32 signatures ``[n, num_perm]``; ``similarity(pairs) -> float64 [p]`` verifies the
    candidate pairs (default: :func:`estimated_jaccard` of the signatures; for exact text
    verification pass ``lambda p: minhash.exact_jaccard(texts, p)``, for images a Hamming-derived
    Jaccard, see :mod:`synth.dedup.phash`). Returns: :class:`Clusters`. The partition does not
    depend on the order of the rows.
    """
    params = params or lsh_params(threshold, signatures.shape[1], target_recall)
    cand = candidate_pairs(signatures, params, window=window, skip_empty=skip_empty)
    jac = (similarity or partial(estimated_jaccard, signatures))(cand)
    keep = jac >= threshold - 1e-12
    pairs = cand[keep]
    labels = connected_components(signatures.shape[0], pairs)
    return Clusters(labels, pairs, jac[keep], len(cand), params)


def choose_representatives(
    labels: np.ndarray,
    ids: Sequence[str] | np.ndarray,
    is_real: np.ndarray | None = None,
    quality: np.ndarray | None = None,
) -> np.ndarray:
    """The kept row of each cluster: real beats synthetic, then higher quality, then smaller id.

    Reads: cluster labels ``[n]``, unique ids ``[n]`` (str or int), ``is_real`` bool ``[n]``
    (default all False), ``quality`` float ``[n]`` with NaN = unscored, ranked below any score.
    Returns: int64 ``[n]``, the index of each row's representative. Independent of row order.
    """
    labels = np.asarray(labels)
    n = len(labels)
    ids_arr = np.asarray(ids)
    if len(ids_arr) != n:
        raise ConfigError(f"ids has {len(ids_arr)} entries but labels has {n}.")
    uniq, id_rank = np.unique(ids_arr, return_inverse=True)
    if len(uniq) != n:
        raise ConfigError("ids must be unique: the keep policy breaks ties by id.")
    real = np.zeros(n, dtype=bool) if is_real is None else np.asarray(is_real, dtype=bool)
    q = np.full(n, np.nan) if quality is None else np.asarray(quality, dtype=np.float64)
    q = np.where(np.isnan(q), -np.inf, q)
    order = np.lexsort((id_rank, -q, ~real, labels))  # last key is the primary one
    first = np.ones(n, dtype=bool)
    first[1:] = labels[order][1:] != labels[order][:-1]
    rep_of_sorted = order[np.flatnonzero(first)[np.cumsum(first) - 1]]
    rep = np.empty(n, dtype=np.int64)
    rep[order] = rep_of_sorted
    return rep


def dedup_columns(ids: Sequence[str] | np.ndarray, representatives: np.ndarray) -> tuple[list[str | None], list[str | None]]:
    """Manifest columns from representatives.

    Returns: ``(dedup_cluster, duplicate_of)``: ``dedup_cluster`` is the representative's id for
    every member of a cluster of two or more (None for a singleton); ``duplicate_of`` is the
    representative's id for a dropped duplicate and None for the representative itself.
    """
    rep = np.asarray(representatives, dtype=np.int64)
    n = len(rep)
    size = np.bincount(rep, minlength=n)
    ids_list = list(ids)
    cluster = [ids_list[r] if size[r] > 1 else None for r in rep.tolist()]
    dup = [ids_list[r] if r != i else None for i, r in enumerate(rep.tolist())]
    return cluster, dup
