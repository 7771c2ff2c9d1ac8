"""Seeded, stratified train/eval splits: one pure function shared by sources and training scripts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def stratified_split(labels: Sequence[object], eval_fraction: float, seed: int) -> np.ndarray:
    """Return a boolean mask, True where the row goes to ``eval``.

    Stratified by label, seeded, independent of anything but (labels, eval_fraction, seed):
    within each label (sorted), rows are permuted by a generator seeded with ``seed`` and the
    first ``round(n * eval_fraction)`` go to eval (at least one when the label has >= 2 rows and
    eval_fraction > 0). Unlabelled rows (None) form their own stratum.

    >>> stratified_split(["a", "a", "b", "b"], 0.5, seed=0).sum()
    2
    """
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError(f"eval_fraction must be in [0, 1), got {eval_fraction}")
    keys = np.array(["\x00none" if x is None else str(x) for x in labels], dtype=object)
    is_eval = np.zeros(len(keys), dtype=bool)
    rng = np.random.default_rng(seed)
    for key in sorted(set(keys.tolist())):
        idx = np.flatnonzero(keys == key)
        n_eval = int(round(len(idx) * eval_fraction))
        if eval_fraction > 0 and len(idx) >= 2:
            n_eval = min(max(n_eval, 1), len(idx) - 1)
        chosen = rng.permutation(idx)[:n_eval]
        is_eval[chosen] = True
    return is_eval


def digits_split(eval_fraction: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits with the project's canonical split.

    Returns ``(images uint8 [n, 8, 8] in 0..255, labels int [n], is_eval bool [n])``. The shipped
    digits diffusion model is trained on the rows where ``is_eval`` is False, with these defaults;
    the ``digits`` source uses the same function, so no eval image ever reaches a model.
    """
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = d.target.astype(np.int64)
    return images, labels, stratified_split(labels.tolist(), eval_fraction, seed)
