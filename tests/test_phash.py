"""Perceptual hashes: distances behave, Hamming <-> Jaccard, token sets match datasketch."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from synth.dedup import minhash as mh
from synth.dedup import phash


def _smooth_image(seed: int, size: int = 96) -> np.ndarray:
    """A random image with structure at every scale (like a photo, unlike white noise)."""
    import cv2

    rng = np.random.default_rng(seed)
    out = np.zeros((size, size, 3), dtype=np.float32)
    for cells in (4, 8, 16):
        layer = rng.uniform(0, 255, (cells, cells, 3)).astype(np.float32)
        out += cv2.resize(layer, (size, size), interpolation=cv2.INTER_CUBIC) / 3
    return np.clip(out, 0, 255).astype(np.uint8)


def _noised(img: np.ndarray, seed: int, sigma: float = 4.0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("method", ["phash", "dhash"])
def test_distances_identical_noised_different(method: str) -> None:
    fn = phash.HASHES[method]
    near, far = [], []
    for seed in range(8):
        img = _smooth_image(seed)
        h = fn(img)
        assert isinstance(h, np.uint64)
        assert phash.hamming(h, fn(img.copy())) == 0
        near.append(int(phash.hamming(h, fn(_noised(img, seed)))))
        far.append(int(phash.hamming(h, fn(_smooth_image(seed + 100)))))
    assert max(near) <= 6, near
    assert min(far) >= 14, far
    assert np.mean(far) > 24


def test_pil_rgba_gray_inputs() -> None:
    img = _smooth_image(3)
    h = phash.phash(img)
    assert phash.phash(Image.fromarray(img)) == h
    rgba = np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2)
    assert phash.phash(rgba) == h
    gray = phash.luminance(img)
    assert gray.shape == img.shape[:2] and gray.dtype == np.float32
    assert phash.phash(gray) == h
    assert phash.image_hashes([img, img], "dhash").tolist() == [phash.dhash(img)] * 2


def test_hamming_jaccard_conversions() -> None:
    assert phash.hamming_to_jaccard(0) == 1.0
    assert phash.hamming_to_jaccard(8) == pytest.approx(56 / 72)
    assert phash.hamming_to_jaccard(64) == 0.0
    d = np.arange(0, 65)
    np.testing.assert_allclose(phash.jaccard_to_hamming(phash.hamming_to_jaccard(d)), d, atol=1e-9)
    assert np.floor(phash.jaccard_to_hamming(0.8)) == 7  # J >= 0.8 <=> at most 7 bits apart


def test_token_sets_relate_to_hamming() -> None:
    rng = np.random.default_rng(0)
    a = np.uint64(rng.integers(0, 2**63))
    for d in (0, 3, 10, 30):
        b = a ^ np.uint64(sum(1 << int(i) for i in rng.choice(64, d, replace=False)))
        assert int(phash.hamming(a, b)) == d
        ta, tb = set(phash.image_tokens(a)), set(phash.image_tokens(b))
        assert len(ta) == len(tb) == 64
        assert len(ta & tb) / len(ta | tb) == pytest.approx(phash.hamming_to_jaccard(d))


def test_image_signatures_match_datasketch() -> None:
    datasketch = pytest.importorskip("datasketch")
    hashes = np.random.default_rng(1).integers(0, 2**63, 5).astype(np.uint64)
    sig = phash.image_signatures(hashes, num_perm=64, seed=3)
    for h, row in zip(hashes, sig):
        m = datasketch.MinHash(num_perm=64, seed=3, scheme="affine32", hashfunc=mh.xxh32_hash)
        m.update_batch(phash.image_tokens(h))
        np.testing.assert_array_equal(row, m.hashvalues)


def test_hamming_matrix_and_brute_force_pairs() -> None:
    h = np.array([0, 1, 3, 2**40, 2**63 + 1], dtype=np.uint64)
    m = phash.hamming_matrix(h)
    assert m.shape == (5, 5) and (m == m.T).all() and (np.diag(m) == 0).all()
    assert m[0, 2] == 2 and m[1, 4] == 1
    assert phash.pairs_within(h, 1, block=2).tolist() == [[0, 1], [0, 3], [1, 2], [1, 4]]


def test_near_duplicate_images_cluster_copies_only() -> None:
    images = [_smooth_image(s) for s in range(30)]
    images += [_noised(images[k], 50 + k) for k in range(10)]
    hashes = phash.image_hashes(images)
    cl = phash.near_duplicate_images(hashes, max_bits=8)
    for k in range(10):
        assert cl.labels[k] == cl.labels[30 + k]
    assert len(np.unique(cl.labels)) == 30
    assert all(int(phash.hamming(hashes[i], hashes[j])) <= 8 for i, j in cl.pairs.tolist())
    brute = {tuple(p) for p in phash.pairs_within(hashes, 8).tolist()}
    assert {tuple(p) for p in cl.pairs.tolist()} <= brute
