"""Set-level diagnostics of a run: score histograms, filter thresholds, and how close and how
diverse the kept synthetic data is compared with the real data, per label.

Pure functions on arrays and tables (``score_histograms``, ``mmd_rbf``, ``frechet_distance``,
``mean_pairwise_distance``, ``set_diagnostics``) plus ``run_diagnostics(run_dir)`` /
``write_diagnostics(run_dir)`` that compute them for a finished run and store them in
``stats.json`` under ``diagnostics``. Embeddings: the sentence encoder of label consistency
(MiniLM) for text, gray pixels at a fixed size for images.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

log = logging.getLogger(__name__)


# ---- scores and thresholds -------------------------------------------------------------------


def score_histograms(table: pa.Table, bins: int = 20, origin: str | None = "synthetic") -> dict[str, dict[str, Any]]:
    """Histogram of every score name in the manifest ``scores`` column.

    Returns ``{score key: {"edges": [bins+1 floats], "kept": [counts], "rejected": [counts],
    "n": int, "min", "max", "mean"}}`` over rows of ``origin`` (None: all rows); ``kept`` and
    ``rejected`` split by the row's final status, so a threshold line shows what it removed.
    """
    cols = table.select(["origin", "status", "scores"]).to_pylist()
    values: dict[str, list[tuple[float, bool]]] = {}
    for r in cols:
        if origin is not None and r["origin"] != origin:
            continue
        for k, v in json.loads(r["scores"] or "{}").items():
            if isinstance(v, int | float) and math.isfinite(v):
                values.setdefault(k, []).append((float(v), r["status"] == "kept"))
    out: dict[str, dict[str, Any]] = {}
    for k in sorted(values):
        v = np.array([x for x, _ in values[k]])
        kept = np.array([ok for _, ok in values[k]])
        lo, hi = float(v.min()), float(v.max())
        if lo == hi:
            lo, hi = lo - 0.5, hi + 0.5
        edges = np.linspace(lo, hi, bins + 1)
        out[k] = {
            "edges": edges.tolist(),
            "kept": np.histogram(v[kept], edges)[0].tolist(),
            "rejected": np.histogram(v[~kept], edges)[0].tolist(),
            "n": int(v.size),
            "min": float(v.min()),
            "max": float(v.max()),
            "mean": float(v.mean()),
        }
    return out


def filter_thresholds(steps: list[Any]) -> dict[str, dict[str, list[tuple[str, float]]]]:
    """``{filter step name: {score key: [(op, value), ...]}}`` for the steps that expose
    ``thresholds()`` (a sample is kept iff every ``score op value`` holds)."""
    return {s.name: s.thresholds() for s in steps if callable(getattr(s, "thresholds", None))}


def run_thresholds(run_dir: str | Path) -> dict[str, dict[str, list[tuple[str, float]]]]:
    """:func:`filter_thresholds` of a run's resolved config (its refilter.yaml when refiltered)."""
    from synth.config import Pipeline, read_yaml

    run_dir = Path(run_dir)
    cfg = run_dir / "refilter.yaml" if (run_dir / "refilter.yaml").exists() else run_dir / "pipeline.yaml"
    return filter_thresholds(Pipeline.from_config(read_yaml(cfg)).steps)


# ---- distances on embeddings ---------------------------------------------------------------------


def _sq_dists(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    d = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * x @ y.T
    return np.maximum(d, 0.0)


def median_gamma(x: np.ndarray) -> float:
    """RBF ``gamma = 1 / median squared distance`` between distinct rows (the median heuristic)."""
    d = _sq_dists(x, x)[np.triu_indices(len(x), 1)]
    med = float(np.median(d)) if d.size else 1.0
    return 1.0 / med if med > 0 else 1.0


def mmd_rbf(x: np.ndarray, y: np.ndarray, gamma: float | None = None) -> float:
    """Unbiased squared MMD between samples ``x`` (n, d) and ``y`` (m, d) with the RBF kernel
    ``exp(-gamma * |a - b|^2)`` (gamma: median heuristic on the pooled rows when None). About 0
    for the same distribution (can be slightly negative), up to 2 for disjoint ones."""
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"MMD needs at least 2 rows on each side, got {n} and {m}")
    if gamma is None:
        gamma = median_gamma(np.concatenate([x, y]))
    kxx, kyy, kxy = (np.exp(-gamma * _sq_dists(a, b)) for a, b in ((x, x), (y, y), (x, y)))
    return float((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2.0 * kxy.mean())


def frechet_distance(x: np.ndarray, y: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to ``x`` and ``y`` (the FID formula on any
    embedding): ``|mu_x - mu_y|^2 + Tr(S_x + S_y - 2 (S_x S_y)^1/2)``."""
    from scipy import linalg

    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"the Fréchet distance needs at least 2 rows on each side, got {len(x)} and {len(y)}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    mu = x.mean(0) - y.mean(0)
    sx, sy = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    with warnings.catch_warnings():  # near-singular covariances of small sets: the real part is what FID uses too
        warnings.simplefilter("ignore")
        covmean = linalg.sqrtm(sx @ sy)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(max(mu @ mu + np.trace(sx) + np.trace(sy) - 2.0 * np.trace(covmean), 0.0))


def mean_pairwise_distance(x: np.ndarray) -> float:
    """Mean Euclidean distance between distinct rows: a diversity figure (0 for copies)."""
    if len(x) < 2:
        return float("nan")
    d = np.sqrt(_sq_dists(x, x)[np.triu_indices(len(x), 1)])
    return float(d.mean())


def _nan_to_none(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), 6)


def set_diagnostics(real: dict[str, np.ndarray], synthetic: dict[str, np.ndarray], gamma: float | None = None) -> dict[str, Any]:
    """Per label and overall: counts, MMD^2 (RBF, one bandwidth for every label; unbiased, so
    about 0 or slightly negative when the sets are indistinguishable) and the Fréchet distance
    (only with more rows than dimensions on both sides) between synthetic and real embeddings, and
    the mean pairwise distance of each (the diversity of synthetic vs real). Labels map to (n, d)
    embedding arrays; missing or too small sets give None."""
    labels = sorted(set(real) | set(synthetic))
    dim = next((a.shape[1] for a in [*real.values(), *synthetic.values()] if a.ndim == 2 and len(a)), 0)
    empty = np.zeros((0, dim))
    all_real = np.concatenate([real.get(lab, empty) for lab in labels]) if labels else empty
    all_syn = np.concatenate([synthetic.get(lab, empty) for lab in labels]) if labels else empty
    if gamma is None and len(all_real) >= 2:
        gamma = median_gamma(all_real)

    def one(r: np.ndarray, s: np.ndarray) -> dict[str, Any]:
        both = len(r) >= 2 and len(s) >= 2
        return {
            "n_real": int(len(r)),
            "n_synthetic": int(len(s)),
            "mmd": _nan_to_none(mmd_rbf(s, r, gamma)) if both else None,
            "frechet": _nan_to_none(frechet_distance(s, r)) if min(len(r), len(s)) > dim else None,
            "diversity_real": _nan_to_none(mean_pairwise_distance(r)),
            "diversity_synthetic": _nan_to_none(mean_pairwise_distance(s)),
        }

    return {
        "labels": {lab: one(real.get(lab, empty), synthetic.get(lab, empty)) for lab in labels},
        "overall": one(all_real, all_syn),
        "gamma": _nan_to_none(gamma) if gamma is not None else None,
    }


# ---- a finished run ------------------------------------------------------------------------------


def _cap(rows: list[Any], cap: int, seed: int) -> list[Any]:
    if len(rows) <= cap:
        return rows
    rng = np.random.default_rng(seed)
    return [rows[i] for i in sorted(rng.choice(len(rows), cap, replace=False))]


def run_diagnostics(
    run_dir: str | Path,
    text_model: str | None = None,
    image_size: int = 16,
    max_per_label: int = 200,
    seed: int = 0,
    label_accuracy: bool = True,
) -> dict[str, Any]:
    """Diagnostics of a finished run, per modality: :func:`set_diagnostics` of kept synthetic rows
    vs real train rows (at most ``max_per_label`` of each per label, seeded), the embedding used,
    and, with ``label_accuracy``, the accuracy of each label-consistency filter's argmax on the
    real eval rows (how far its verdicts can be trusted)."""
    from synth.embeddings import pixel_features
    from synth.manifest import read_samples

    run_dir = Path(run_dir)
    rows = read_samples(run_dir)
    out: dict[str, Any] = {}
    for modality in ("image", "text"):
        real = [s for s in rows if s.modality == modality and s.origin == "real" and s.split == "train" and s.kept]
        syn = [s for s in rows if s.modality == modality and s.origin == "synthetic" and s.kept]
        if not real:
            continue
        by_label: dict[str, tuple[list[Any], list[Any]]] = {}
        for s in real:
            by_label.setdefault(str(s.label), ([], []))[0].append(s)
        for s in syn:
            by_label.setdefault(str(s.label), ([], []))[1].append(s)
        picked = {lab: (_cap(r, max_per_label, seed), _cap(y, max_per_label, seed)) for lab, (r, y) in by_label.items()}
        flat = [s for r, y in picked.values() for s in (*r, *y)]
        if modality == "text":
            from synth.embeddings import sentence_encoder

            enc = sentence_encoder(text_model)
            emb = enc.encode([s.text or "" for s in flat])
            embedding = {"kind": "sentence", "model": enc.model_id, "revision": enc.revision}
        else:
            emb = pixel_features([s.load_image(run_dir) for s in flat], (image_size, image_size))
            embedding = {"kind": "pixels", "size": image_size}
        index = {s.id: i for i, s in enumerate(flat)}
        real_emb = {lab: emb[[index[s.id] for s in r]] for lab, (r, _) in picked.items() if r}
        syn_emb = {lab: emb[[index[s.id] for s in y]] for lab, (_, y) in picked.items() if y}
        d = set_diagnostics(real_emb, syn_emb)
        for lab, (r, y) in by_label.items():  # full counts, not the capped ones
            d["labels"][lab].update(n_real=len(r), n_synthetic=len(y))
        d["overall"].update(n_real=len(real), n_synthetic=len(syn))
        d["n_synthetic_rejected"] = sum(1 for s in rows if s.modality == modality and s.origin == "synthetic" and not s.kept)
        d["embedding"] = embedding
        out[modality] = d
    if label_accuracy:
        acc = label_consistency_accuracy(run_dir)
        if acc:
            out["label_consistency_accuracy"] = acc
    return out


def label_consistency_accuracy(run_dir: str | Path, split: str = "eval") -> dict[str, dict[str, Any]]:
    """For each label-consistency filter of the run: the accuracy of its argmax label on the real
    rows of ``split`` (fitted on the real train rows, as in the run)."""
    from synth.config import Pipeline, read_yaml
    from synth.filters.label_consistency import _LabelConsistency
    from synth.manifest import read_samples
    from synth.steps import Context

    run_dir = Path(run_dir)
    pipeline = Pipeline.from_config(read_yaml(run_dir / "pipeline.yaml"))
    rows = read_samples(run_dir)
    out = {}
    for step in pipeline.steps:
        if not isinstance(step, _LabelConsistency):
            continue
        test = [s for s in rows if s.origin == "real" and s.split == split and s.modality == step.modality_name and s.label is not None]
        if not test:
            continue
        step.setup(Context(run_dir=run_dir))
        try:
            out[step.name] = {"split": split, "n": len(test), "accuracy": round(step.accuracy(test, run_dir), 6)}
        finally:
            step.teardown()
    return out


def write_diagnostics(run_dir: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Compute :func:`run_diagnostics` and store it in ``RUN_DIR/stats.json`` under ``diagnostics``."""
    from synth.util import atomic_write_json

    run_dir = Path(run_dir)
    diag = run_diagnostics(run_dir, **kwargs)
    path = run_dir / "stats.json"
    stats = json.loads(path.read_text()) if path.exists() else {}
    stats["diagnostics"] = diag
    atomic_write_json(path, stats)
    return diag
