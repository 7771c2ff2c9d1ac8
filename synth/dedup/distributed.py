"""Near-duplicate clustering on Ray: the computation of :func:`synth.dedup.lsh.near_duplicate_clusters`,
spread over a cluster, with bit-identical results.

1. **Sign** (map): one task per block of rows computes the block's signature matrix with the same
   pure function the local dedup uses; blocks stay in the object store.
2. **Band and partition** (map): one task per block computes its band keys and a content tiebreak
   (:func:`synth.dedup.lsh.band_keys`) and splits ``(band, key, tiebreak, row)`` by ``key % P``
   into ``P`` partitions: every member of a bucket lands in the same partition.
3. **Group** (reduce, the shuffle): one task per partition groups its rows by (band, key) and pairs
   bucket members exactly as the local banding does (content order, ``window`` neighbours).
4. **Verify**: candidate pairs are grouped by the pair of blocks their rows live in; one task per
   block pair estimates their Jaccard from the two signature blocks (memory: two blocks per task).
   An exact ``similarity`` (text shingle Jaccard, image Hamming distance) runs on the driver instead,
   which holds the rows of a barrier anyway, exactly as locally.
5. **Resolve** (driver): the verified pairs (small) go through the same union-find, so the
   :class:`~synth.dedup.lsh.Clusters` equal the local ones; the caller applies the same
   order-independent keep policy.

:func:`text_clusters` and :func:`image_clusters` are the dedup step's two clusterings on Ray, and
:func:`run_dedup_barrier` runs a pipeline's ``dedup`` barrier with them (``--executor ray``).
At most ``workers`` tasks run at once (default: the cluster's CPUs); the object store holds the
signatures plus, during the shuffle, one copy of the band records (``28 * bands`` bytes per row).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from synth.dedup.lsh import Clusters, LSHParams, _bucket_pairs, band_keys, connected_components, lsh_params
from synth.errors import ConfigError

_EMPTY = np.uint32(0xFFFFFFFF)


def block_bounds(n: int, block_rows: int) -> list[tuple[int, int]]:
    """Returns: ``[(start, stop), ...]`` covering ``range(n)`` in blocks of ``block_rows`` rows."""
    if block_rows < 1:
        raise ConfigError(f"block_rows must be a positive integer, got {block_rows!r}.")
    return [(lo, min(lo + block_rows, n)) for lo in range(0, n, block_rows)]


def _ray():
    try:
        import ray
    except ModuleNotFoundError as e:  # pragma: no cover - exercised only without ray
        raise ConfigError("distributed dedup needs Ray: pip install 'synth[ray]'.") from e
    if not ray.is_initialized():
        raise ConfigError("distributed dedup needs a connected Ray session: call ray.init() (or use `synth run --executor ray`).")
    return ray


# ---------------------------------------------------------------- task bodies (pure, module level)


def _sign(sign: Callable[[Any], np.ndarray], block: Any) -> tuple[np.ndarray, tuple[int, int]]:
    sig = np.ascontiguousarray(sign(block), dtype=np.uint32)
    if sig.ndim != 2:
        raise ConfigError(f"the signature function must return a 2-d uint32 array, got shape {sig.shape}.")
    return sig, sig.shape


def _band_partition(sig: np.ndarray, offset: int, bands: int, rows: int, parts: int, skip_empty: bool) -> Any:
    """One block's (band, key, tiebreak, row) records, split into ``parts`` structured arrays
    (one Ray return each; a single array when ``parts == 1``)."""
    index = np.arange(offset, offset + sig.shape[0], dtype=np.int64)
    if skip_empty and sig.shape[0]:
        keep = ~np.all(sig == _EMPTY, axis=1)
        sig, index = sig[keep], index[keep]
    keys = band_keys(sig, bands, rows)  # [n, bands]
    tiebreak = band_keys(sig, 1, sig.shape[1])[:, 0]  # hash of the whole signature, as the local banding
    rec = np.empty(keys.size, dtype=[("band", np.int32), ("key", np.uint64), ("tb", np.uint64), ("row", np.int64)])
    rec["band"] = np.tile(np.arange(bands, dtype=np.int32), len(index))
    rec["key"] = keys.reshape(-1)
    rec["tb"] = np.repeat(tiebreak, bands)
    rec["row"] = np.repeat(index, bands)
    dest = (rec["key"] % np.uint64(parts)).astype(np.int64)
    order = np.argsort(dest, kind="stable")
    cuts = np.searchsorted(dest[order], np.arange(1, parts))
    split = np.split(rec[order], cuts)
    return split if parts > 1 else split[0]


def _group_pairs(window: int, *parts: np.ndarray) -> np.ndarray:
    """Reduce: candidate pairs (encoded ``i << 32 | j``) of the buckets of one partition."""
    rec = np.concatenate(parts) if parts else np.empty(0)
    out = [np.empty(0, dtype=np.uint64)]
    if rec.size:
        rec = rec[np.lexsort((rec["row"], rec["band"]))]  # by band, rows ascending as in the local arrays
        starts = np.flatnonzero(np.r_[True, rec["band"][1:] != rec["band"][:-1]])
        for lo, hi in zip(starts, [*starts[1:], len(rec)]):
            r = rec[lo:hi]
            out.append(_bucket_pairs(r["key"], r["tb"], r["row"], window))
    return np.unique(np.concatenate(out))


def _verify(sig_a: np.ndarray, sig_b: np.ndarray, li: np.ndarray, lj: np.ndarray, chunk: int = 65536) -> np.ndarray:
    """Estimated Jaccard (fraction of equal entries) of rows ``sig_a[li]`` and ``sig_b[lj]``."""
    out = np.empty(len(li), dtype=np.float64)
    m = sig_a.shape[1]
    for lo in range(0, len(li), chunk):
        eq = (sig_a[li[lo : lo + chunk]] == sig_b[lj[lo : lo + chunk]]).sum(axis=1)
        out[lo : lo + chunk] = eq / m
    return out


# ---------------------------------------------------------------- driver


def _bounded(calls: Iterable[Callable[[], Any]], limit: int, track: Callable[[Any], Any] = lambda r: r) -> list[Any]:
    """Submit ``calls`` with at most ``limit`` in flight (``track`` maps a result to a waitable ref)."""
    ray = _ray()
    results, inflight = [], []
    for call in calls:
        if len(inflight) >= limit:
            _, inflight = ray.wait(inflight, num_returns=1)
        res = call()
        results.append(res)
        inflight.append(track(res))
    return results


def parallelism(workers: int | None = None) -> int:
    """Tasks run at once: ``workers`` or the cluster's CPU count."""
    ray = _ray()
    return max(1, workers or int(ray.cluster_resources().get("CPU", 1)))


def distributed_clusters(
    blocks: Sequence[Any],
    sign: Callable[[Any], np.ndarray],
    threshold: float = 0.8,
    params: LSHParams | None = None,
    target_recall: float = 0.95,
    window: int = 8,
    skip_empty: bool = True,
    partitions: int | None = None,
    workers: int | None = None,
    task_options: dict[str, Any] | None = None,
    similarity: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Clusters:
    """Cluster near-duplicates across a Ray cluster.

    Reads: ``blocks``, picklable pieces of the input in row order (e.g. lists of texts or table
    slices), and ``sign``, a picklable function (module level or a ``functools.partial``) turning
    one block into its uint32 signature matrix. ``partitions`` sets the shuffle width (default
    2 x parallelism); ``workers`` caps the tasks in flight; ``task_options`` are Ray task options
    (e.g. ``runtime_env``). ``similarity(pairs) -> float64 [p]``, as in the local function, verifies
    the candidates on the driver instead (exact text Jaccard, image Hamming distance: it needs the
    rows, which the driver of a barrier holds). Returns: the :class:`~synth.dedup.lsh.Clusters` that
    ``near_duplicate_clusters(concat(sign(b) for b in blocks), threshold, params, target_recall,
    window, skip_empty, similarity)`` returns.
    """
    ray = _ray()
    par = parallelism(workers)
    opts = {"num_cpus": 1, "max_retries": 3, **(task_options or {})}
    sign_task = ray.remote(_sign).options(**{**opts, "num_returns": 2})
    sign_ref = ray.put(sign)
    signed = _bounded((lambda b=b: sign_task.remote(sign_ref, b) for b in blocks), par, track=lambda res: res[1])
    sig_refs = [sig for sig, _ in signed]
    sizes, widths = zip(*ray.get([shape for _, shape in signed])) if blocks else ((), ())
    n = int(sum(sizes))
    if len(set(widths)) > 1:
        raise ConfigError(f"signature blocks have different widths {sorted(set(widths))}: use one num_perm for the whole input.")
    num_perm = widths[0] if widths else 1
    params = params or lsh_params(threshold, num_perm, target_recall)
    if params.bands * params.rows > num_perm:
        raise ConfigError(f"bands*rows = {params.bands * params.rows} exceeds the signature length {num_perm}.")
    offsets = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    if n >= 1 << 32:
        raise ConfigError(f"at most 2**32 - 1 documents per call, got {n}.")
    if n < 2:
        return Clusters(np.arange(n, dtype=np.int64), np.empty((0, 2), np.int64), np.empty(0), 0, params)

    parts = max(1, partitions or 2 * par)
    band_task = ray.remote(_band_partition).options(**{**opts, "num_returns": parts})
    mapped = _bounded(
        (
            lambda r=r, off=int(off): band_task.remote(r, off, params.bands, params.rows, parts, skip_empty)
            for r, off in zip(sig_refs, offsets[:-1])
        ),
        par,
        track=lambda res: res[0] if parts > 1 else res,
    )
    mapped = [m if parts > 1 else [m] for m in mapped]
    group_task = ray.remote(_group_pairs).options(**opts)
    grouped = _bounded((lambda p=p: group_task.remote(window, *[m[p] for m in mapped]) for p in range(parts)), par)
    mapped.clear()  # release the partitions once every reducer holds its inputs
    codes = np.unique(np.concatenate([np.empty(0, np.uint64), *ray.get(grouped)]))
    cand = np.empty((len(codes), 2), dtype=np.int64)
    cand[:, 0] = (codes >> np.uint64(32)).astype(np.int64)
    cand[:, 1] = (codes & np.uint64(0xFFFFFFFF)).astype(np.int64)

    if similarity is not None:
        jac = np.asarray(similarity(cand), dtype=np.float64)
    else:
        jac = _verify_by_blocks(cand, sig_refs, offsets, par, opts)
    keep = jac >= threshold - 1e-12
    pairs = cand[keep]
    return Clusters(connected_components(n, pairs), pairs, jac[keep], len(cand), params)


def _verify_by_blocks(cand: np.ndarray, sig_refs: list[Any], offsets: np.ndarray, par: int, opts: dict[str, Any]) -> np.ndarray:
    """Estimated Jaccard of candidate pairs: one task per pair of signature blocks the pairs span."""
    ray = _ray()
    jac = np.empty(len(cand), dtype=np.float64)
    bi = np.searchsorted(offsets, cand[:, 0], side="right") - 1
    bj = np.searchsorted(offsets, cand[:, 1], side="right") - 1
    verify_task = ray.remote(_verify).options(**opts)
    code = bi * len(sig_refs) + bj
    order = np.argsort(code, kind="stable")
    starts = np.flatnonzero(np.r_[True, code[order][1:] != code[order][:-1]]) if len(cand) else np.empty(0, np.int64)
    groups = {(int(bi[order[s]]), int(bj[order[s]])): sel for s, sel in zip(starts, np.split(order, starts[1:]))}
    refs = _bounded(
        (
            lambda a=a, b=b, sel=sel: verify_task.remote(sig_refs[a], sig_refs[b], cand[sel, 0] - offsets[a], cand[sel, 1] - offsets[b])
            for (a, b), sel in groups.items()
        ),
        par,
    )
    for sel, values in zip(groups.values(), ray.get(refs)):
        jac[sel] = values
    return jac


def split_rows(items: Sequence[Any], block_rows: int | None = None, workers: int | None = None) -> list[Any]:
    """Cut ``items`` into row blocks: ``block_rows`` each, or about 2 blocks per worker."""
    n = len(items)
    if block_rows is None:
        block_rows = max(1, math.ceil(n / (2 * parallelism(workers))))
    return [items[lo:hi] for lo, hi in block_bounds(n, block_rows)]


# ---------------------------------------------------------------- the dedup step's clustering on Ray


def text_clusters(
    texts: Sequence[str],
    threshold: float = 0.8,
    num_perm: int = 128,
    seed: int = 1,
    ngram: int = 5,
    norm: Any = None,
    target_recall: float = 0.95,
    verify: str = "exact",
    workers: int | None = None,
    task_options: dict[str, Any] | None = None,
) -> Clusters:
    """Text near-duplicates on Ray, equal to ``lsh.near_duplicate_clusters(minhash.text_signatures(
    texts, num_perm, seed, ngram, norm), threshold, target_recall=..., similarity=exact or None)``.

    Signatures are computed per block in tasks; ``verify="exact"`` re-shingles only the candidate
    pairs' documents on the driver (:func:`synth.dedup.minhash.exact_jaccard`), ``"estimated"``
    compares signatures per block pair in tasks.
    """
    from synth.dedup import minhash

    norm = norm or minhash.DEFAULT_NORM
    if verify not in ("exact", "estimated"):
        raise ConfigError(f"verify must be 'exact' or 'estimated', got {verify!r}.")
    sign = functools.partial(minhash.text_signatures, num_perm=num_perm, seed=seed, ngram=ngram, norm=norm)
    sim = functools.partial(minhash.exact_jaccard, texts, ngram=ngram, norm=norm) if verify == "exact" else None
    return distributed_clusters(
        split_rows(texts, workers=workers),
        sign,
        threshold,
        target_recall=target_recall,
        workers=workers,
        task_options=task_options,
        similarity=sim,
    )


def image_clusters(
    images: Sequence[Any],
    method: str = "phash",
    max_bits: int = 4,
    num_perm: int = 128,
    seed: int = 1,
    target_recall: float = 0.95,
    workers: int | None = None,
    task_options: dict[str, Any] | None = None,
) -> Clusters:
    """Image near-duplicates on Ray, equal to ``phash.near_duplicate_images(phash.image_hashes(
    images, method), max_bits, num_perm, seed, target_recall)``: perceptual hashes per block in
    tasks, then the distributed banding; candidates are verified on their exact Hamming distance."""
    from synth.dedup import phash

    if not 0 <= max_bits < phash.BITS:
        raise ConfigError(f"max_bits must be in [0, {phash.BITS}), got {max_bits!r}.")
    ray = _ray()
    par = parallelism(workers)
    hash_task = ray.remote(phash.image_hashes).options(**{"num_cpus": 1, "max_retries": 3, **(task_options or {})})
    refs = _bounded((lambda b=b: hash_task.remote(b, method) for b in split_rows(images, workers=workers)), par)
    hashes = np.concatenate([np.empty(0, np.uint64), *ray.get(refs)])
    threshold = 1.0 - 1e-9 if max_bits == 0 else float(phash.hamming_to_jaccard(max_bits))  # as near_duplicate_images
    sign = functools.partial(phash.image_signatures, num_perm=num_perm, seed=seed)
    return distributed_clusters(
        split_rows(hashes, workers=workers),
        sign,
        threshold,
        target_recall=target_recall,
        skip_empty=False,
        workers=workers,
        task_options=task_options,
        similarity=phash.hamming_similarity(hashes),
    )


def has_dedup_seam() -> bool:
    """True when the dedup step routes its clustering through ``text_clusters`` / ``image_clusters``
    methods, which :class:`RayDedup` overrides."""
    from synth.dedup.step import Dedup

    return callable(getattr(Dedup, "text_clusters", None)) and callable(getattr(Dedup, "image_clusters", None))


def ray_dedup(barrier: Any, workers: int | None = None, task_options: dict[str, Any] | None = None) -> Any:
    """The same dedup step (name, parameters, resources) with its clustering on Ray."""
    from synth.dedup.step import Dedup

    class RayDedup(type(barrier)):  # a subclass of the configured step, so every decision stays the step's own
        def text_clusters(self, texts: Sequence[str]) -> Clusters:
            p = self.params
            return text_clusters(
                texts,
                p.threshold,
                p.num_perm,
                p.seed,
                p.ngram,
                self.norm(),
                p.target_recall,
                p.verify,
                workers=workers,
                task_options=task_options,
            )

        def image_clusters(self, images: Sequence[Any]) -> Clusters:
            p = self.params
            return image_clusters(
                images, p.image_hash, p.image_max_bits, p.num_perm, p.seed, p.target_recall, workers=workers, task_options=task_options
            )

    if not isinstance(barrier, Dedup):
        raise ConfigError(f"step {barrier.name!r} is not a dedup step.")
    RayDedup.__name__ = RayDedup.__qualname__ = f"Ray{type(barrier).__name__}"
    return RayDedup.from_params(barrier.name, barrier.params, barrier.resources)


def run_dedup_barrier(run: Any, segment: int, workers: int | None = None, runtime_env: dict[str, Any] | None = None) -> str:
    """Run a segment's ``dedup`` barrier with its clustering on Ray, through ``Run.run_barrier`` (same
    input, bookkeeping and atomic output as locally). Returns where the clustering ran: ``"ray"``, or
    ``"driver"`` when the step has no clustering seam to override (then it runs as locally)."""
    import logging

    seg = run.segments[segment]
    if not has_dedup_seam():
        logging.getLogger(__name__).warning(
            "dedup step %r has no text_clusters/image_clusters seam: running it on the driver", seg.barrier.name
        )
        run.run_barrier(segment)
        return "driver"
    original = seg.barrier
    seg.barrier = ray_dedup(original, workers, {"runtime_env": runtime_env} if runtime_env else None)
    try:
        run.run_barrier(segment)
    finally:
        seg.barrier = original
    return "ray"
