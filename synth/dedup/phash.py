"""Perceptual image hashes as sets, so the MinHash/LSH machinery of text applies to images.

Hashes: 64-bit pHash (DCT of the 32x32 luminance, low 8x8 block against its median) or dHash
(9x8 luminance, each pixel against its right neighbour). Bit ``i`` of the returned uint64 is the
i-th cell in row-major order.

Hash -> set: ``T(h) = {2*i + bit_i(h) : i < 64}``, 64 tokens out of 128; token ``t`` is hashed as
``xxh32_hash(bytes([t]))``, so ``datasketch.MinHash(hashfunc=xxh32_hash).update_batch(
image_tokens(h))`` gives the same signature as :func:`image_signatures`. Two hashes at Hamming
distance ``d`` share ``64 - d`` tokens and their union has ``64 + d``, so

    J = (64 - d) / (64 + d)            d = 64 * (1 - J) / (1 + J)

    d (bits)   0     2     4     6     8     10    12    16    24    32
    J        1.000 0.939 0.882 0.829 0.778 0.730 0.684 0.600 0.455 0.333

Near-duplicate images (re-encodes, resizes, light noise or colour shifts) are typically within
6-10 bits of pHash; unrelated images are around 32. The default :data:`DEFAULT_MAX_BITS` = 8 is
the LSH threshold J = 0.778; :func:`near_duplicate_images` then verifies candidates on the exact
Hamming distance, not on the MinHash estimate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import numpy as np

from synth.dedup import lsh, minhash
from synth.errors import ConfigError

BITS = 64
DEFAULT_MAX_BITS = 8
_WEIGHTS = np.uint64(1) << np.arange(BITS, dtype=np.uint64)
_BYTE_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def hamming_to_jaccard(bits: float | np.ndarray, n_bits: int = BITS) -> float | np.ndarray:
    """Returns: the Jaccard of the token sets of two hashes ``bits`` apart: (n-d)/(n+d)."""
    d = np.asarray(bits, dtype=np.float64)
    out = (n_bits - d) / (n_bits + d)
    return float(out) if out.ndim == 0 else out


def jaccard_to_hamming(jaccard: float | np.ndarray, n_bits: int = BITS) -> float | np.ndarray:
    """Returns: the Hamming distance whose token-set Jaccard is ``jaccard``: n(1-J)/(1+J).

    Not rounded: ``floor`` of it is the largest whole distance that still meets the Jaccard.
    """
    j = np.asarray(jaccard, dtype=np.float64)
    out = n_bits * (1.0 - j) / (1.0 + j)
    return float(out) if out.ndim == 0 else out


def luminance(image: Any) -> np.ndarray:
    """Reads: an RGB/RGBA/gray array (H, W[, C]) of uint8 or floats, or a PIL image.

    Returns: float32 (H, W) luminance, ITU-R BT.601 weights (OpenCV's RGB2GRAY).
    """
    import cv2

    if hasattr(image, "convert"):  # PIL.Image
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        arr = arr[:, :, :3]
        if arr.dtype not in (np.uint8, np.uint16, np.float32):
            arr = arr.astype(np.float32)
        arr = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2GRAY)
    if arr.ndim != 2 or arr.size == 0:
        raise ConfigError(f"expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}.")
    return arr.astype(np.float32, copy=False)


def _pack(bits: np.ndarray) -> np.uint64:
    return np.uint64(np.sum(_WEIGHTS[bits.ravel()]))


def phash(image: Any) -> np.uint64:
    """64-bit perceptual hash: DCT of the 32x32 area-resized luminance, 8x8 low block > median.

    Reads: an image (see :func:`luminance`). Returns: the hash as ``np.uint64``.
    """
    import cv2

    small = cv2.resize(luminance(image), (32, 32), interpolation=cv2.INTER_AREA)
    low = cv2.dct(small)[:8, :8]
    return _pack(low > np.median(low))


def dhash(image: Any) -> np.uint64:
    """64-bit difference hash: 9x8 area-resized luminance, each pixel > its right neighbour.

    Reads: an image (see :func:`luminance`). Returns: the hash as ``np.uint64``.
    """
    import cv2

    small = cv2.resize(luminance(image), (9, 8), interpolation=cv2.INTER_AREA)
    return _pack(small[:, 1:] > small[:, :-1])


HASHES: dict[str, Callable[[Any], np.uint64]] = {"phash": phash, "dhash": dhash}


def image_hashes(images: Iterable[Any], method: str = "phash") -> np.ndarray:
    """Reads: images (arrays or PIL). Returns: uint64 ``[n]`` hashes by ``method`` (phash|dhash)."""
    if method not in HASHES:
        raise ConfigError(f"unknown image hash {method!r}. Valid options: {', '.join(sorted(HASHES))}.")
    fn = HASHES[method]
    return np.fromiter((fn(im) for im in images), dtype=np.uint64)


def popcount(x: np.ndarray) -> np.ndarray:
    """Returns: the number of set bits of each uint64, as uint8."""
    x = np.asarray(x, dtype=np.uint64)
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x)
    as_bytes = np.ascontiguousarray(x).reshape(-1).view(np.uint8).reshape(-1, 8)
    return _BYTE_POPCOUNT[as_bytes].sum(axis=1, dtype=np.uint8).reshape(x.shape)


def hamming(a: np.ndarray | int, b: np.ndarray | int) -> np.ndarray:
    """Returns: the number of differing bits, element-wise (uint8), of uint64 hashes."""
    return popcount(np.bitwise_xor(np.asarray(a, dtype=np.uint64), np.asarray(b, dtype=np.uint64)))


def hamming_matrix(hashes: np.ndarray) -> np.ndarray:
    """Returns: uint8 ``[n, n]`` pairwise Hamming distances (for small sets: n**2 memory)."""
    h = np.asarray(hashes, dtype=np.uint64)
    return hamming(h[:, None], h[None, :])


def pairs_within(hashes: np.ndarray, max_bits: int = DEFAULT_MAX_BITS, block: int = 2048) -> np.ndarray:
    """All pairs within ``max_bits`` by brute force, in blocks (exact; O(n**2) time).

    Returns: int64 ``[p, 2]`` pairs ``i < j``, sorted.
    """
    h = np.asarray(hashes, dtype=np.uint64)
    out = []
    for lo in range(0, len(h), block):
        d = hamming(h[lo : lo + block, None], h[None, :])
        i, j = np.nonzero(d <= max_bits)
        i = i + lo
        keep = i < j
        out.append(np.stack([i[keep], j[keep]], axis=1))
    return np.concatenate(out).astype(np.int64) if out else np.empty((0, 2), dtype=np.int64)


@lru_cache(maxsize=1)
def _token_hash_table() -> np.ndarray:
    return np.array([minhash.xxh32_hash(bytes([t])) for t in range(2 * BITS)], dtype=np.uint32)


def image_tokens(h: int | np.uint64) -> list[bytes]:
    """The set of one hash as datasketch-ready members: ``bytes([2*i + bit_i])`` for i < 64."""
    h = int(h)
    return [bytes([2 * i + ((h >> i) & 1)]) for i in range(BITS)]


def hash_tokens(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Token hashes of many image hashes, for :func:`synth.dedup.minhash.hash_signatures`.

    Returns: ``(values, offsets)``: uint32 ``[n * 64]`` (``xxh32_hash`` of each token) and int64
    ``[n + 1]`` offsets (64 tokens per image).
    """
    h = np.asarray(hashes, dtype=np.uint64)
    bits = ((h[:, None] >> np.arange(BITS, dtype=np.uint64)) & np.uint64(1)).astype(np.int64)
    tokens = 2 * np.arange(BITS, dtype=np.int64)[None, :] + bits
    return _token_hash_table()[tokens].ravel(), np.arange(len(h) + 1, dtype=np.int64) * BITS


def image_signatures(hashes: np.ndarray, num_perm: int = 128, seed: int = 1) -> np.ndarray:
    """Returns: uint32 ``[n, num_perm]`` MinHash signatures of the hashes' token sets."""
    values, offsets = hash_tokens(hashes)
    return minhash.hash_signatures(values, offsets, num_perm, seed)


def hamming_similarity(hashes: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Returns: ``pairs -> exact token-set Jaccard`` from Hamming distances (a ``similarity`` for
    :func:`synth.dedup.lsh.near_duplicate_clusters`)."""
    h = np.asarray(hashes, dtype=np.uint64)

    def similarity(pairs: np.ndarray) -> np.ndarray:
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        return np.asarray(hamming_to_jaccard(hamming(h[pairs[:, 0]], h[pairs[:, 1]])), dtype=np.float64)

    return similarity


def near_duplicate_images(
    hashes: np.ndarray,
    max_bits: int = DEFAULT_MAX_BITS,
    num_perm: int = 128,
    seed: int = 1,
    target_recall: float = 0.95,
) -> lsh.Clusters:
    """Cluster image hashes within ``max_bits`` of each other (MinHash LSH, exact verification).

    Reads: uint64 hashes ``[n]``. Returns: :class:`synth.dedup.lsh.Clusters`; every verified
    pair is within ``max_bits`` bits; a pair exactly ``max_bits`` apart is found with probability
    ``clusters.params.recall_at_threshold`` (closer pairs more often).
    """
    if not 0 <= max_bits < BITS:
        raise ConfigError(f"max_bits must be in [0, {BITS}), got {max_bits!r}.")
    threshold = float(hamming_to_jaccard(max_bits))
    sig = image_signatures(hashes, num_perm, seed)
    if max_bits == 0:
        threshold = 1.0 - 1e-9  # lsh_params needs J < 1; verification is exact anyway
    return lsh.near_duplicate_clusters(sig, threshold, target_recall=target_recall, similarity=hamming_similarity(hashes), skip_empty=False)
