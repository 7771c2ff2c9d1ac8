"""Set-level diagnostics: distances and diversity on arrays, score histograms, a run's figures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from synth.diagnostics import (
    filter_thresholds,
    frechet_distance,
    mean_pairwise_distance,
    mmd_rbf,
    run_diagnostics,
    score_histograms,
    set_diagnostics,
    write_diagnostics,
)
from synth.filters.image_quality import ImageQuality
from synth.filters.text_quality import TextQuality
from synth.manifest import samples_to_table, write_table
from synth.sample import Sample


def gauss(n: int, shift: float = 0.0, seed: int = 0, dim: int = 4) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)) + shift


def test_mmd_same_vs_shifted():
    same = mmd_rbf(gauss(200, 0, 1), gauss(200, 0, 2))
    far = mmd_rbf(gauss(200, 0, 1), gauss(200, 3, 2))
    assert abs(same) < 0.02 < 0.5 < far <= 2.0
    assert mmd_rbf(gauss(50, 0, 1), gauss(50, 3, 2), gamma=0.1) != pytest.approx(far)
    with pytest.raises(ValueError, match="at least 2"):
        mmd_rbf(gauss(1), gauss(5))


def test_frechet_distance_known_values():
    x = gauss(4000, 0, 1)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(x, x + 2.0) == pytest.approx(4 * 4.0, rel=1e-6)  # |mu shift|^2 over 4 dims
    assert frechet_distance(gauss(4000, 0, 1), 2.0 * gauss(4000, 0, 2)) == pytest.approx(4 * 1.0, rel=0.1)  # sigma 1 vs 2


def test_mean_pairwise_distance():
    assert mean_pairwise_distance(np.ones((5, 3))) == 0.0
    assert mean_pairwise_distance(np.array([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)
    assert np.isnan(mean_pairwise_distance(np.ones((1, 3))))


def test_set_diagnostics_per_label():
    real = {"a": gauss(30, 0, 1), "b": gauss(30, 5, 2)}
    syn = {"a": gauss(20, 0, 3), "b": np.repeat(gauss(1, 5, 4), 20, axis=0), "c": gauss(1, 0, 5)}
    d = set_diagnostics(real, syn)
    a, b, c = d["labels"]["a"], d["labels"]["b"], d["labels"]["c"]
    assert (a["n_real"], a["n_synthetic"], b["n_synthetic"], c["n_real"]) == (30, 20, 20, 0)
    assert a["mmd"] < b["mmd"]  # collapsed synthetic set is further from the real one
    assert b["diversity_synthetic"] == 0.0 < b["diversity_real"]  # and has no diversity
    assert c["mmd"] is None and c["frechet"] is None and a["frechet"] > 0  # 4 dims < 20 rows: defined
    assert d["overall"]["n_real"] == 60 and d["overall"]["n_synthetic"] == 41 and d["gamma"] > 0


def _row(i, status="kept", scores=None, origin="synthetic"):
    s = Sample(
        id=f"s{i}",
        modality="text",
        origin=origin,
        label="a",
        text="x",
        scores=scores or {},
        status=status,
        reject_reason=None if status == "kept" else "filter:tq.too_short",
    )
    return s


def test_score_histograms():
    rows = [_row(i, "kept" if i >= 3 else "rejected", {"tq.chars": float(i), "tq.words": 2.0}) for i in range(10)]
    rows.append(_row(99, scores={"tq.chars": 1000.0}, origin="real"))  # real rows are left out by default
    h = score_histograms(samples_to_table(rows, "t"), bins=5)
    assert set(h) == {"tq.chars", "tq.words"}
    c = h["tq.chars"]
    assert c["edges"][0] == 0 and c["edges"][-1] == 9 and len(c["edges"]) == 6
    assert sum(c["kept"]) == 7 and sum(c["rejected"]) == 3 and c["n"] == 10 and c["mean"] == 4.5
    assert c["rejected"][0] == 2 and c["rejected"][1] == 1
    assert h["tq.words"]["edges"] == [1.5, 1.7, 1.9, 2.1, 2.3, 2.5]  # a constant score gets a unit-wide range
    assert score_histograms(samples_to_table(rows, "t"), origin=None)["tq.chars"]["max"] == 1000.0


def test_filter_thresholds():
    th = filter_thresholds([TextQuality(min_words=None), ImageQuality(name="iq", min_sharpness=5.0)])
    assert "text_quality.words" in th["text_quality"] and th["text_quality"]["text_quality.words"] == [("<=", 2000.0)]
    assert th["iq"]["iq.sharpness"] == [(">=", 5.0)]


def test_run_diagnostics_on_a_run_dir(ctx, real_images, real_texts):
    """Digits + conftest texts: real train rows vs 'synthetic' copies (one label collapsed)."""
    from synth.config import Pipeline

    run = ctx.run_dir
    syn_img = [s.copy(id=f"g-{s.id}", origin="synthetic", generator="g") for s in real_images]
    syn_txt = [s.copy(id=f"g-{s.id}", origin="synthetic", generator="g", text="where is my package") for s in real_texts]
    evals = [s.copy(id=f"e-{s.id}", split="eval") for s in real_texts]
    rows = [*real_images, *real_texts, *evals, *syn_img, *syn_txt]
    write_table(samples_to_table(rows, "t"), run / "manifest.parquet")
    write_table(samples_to_table([*real_images, *real_texts, *evals], "t"), run / "state" / "sources.parquet")
    cfg = {"name": "d", "sources": [{"type": "digits"}], "steps": [{"type": "text_label_consistency"}, {"type": "image_label_consistency"}]}
    (run / "pipeline.yaml").write_text(Pipeline.from_config(cfg).to_yaml())
    (run / "stats.json").write_text(json.dumps({"pipeline": "d"}))
    d = write_diagnostics(run, max_per_label=2)
    assert json.loads((run / "stats.json").read_text())["diagnostics"]["image"]["overall"]["n_real"] == 20
    img, txt = d["image"], d["text"]
    assert img["embedding"] == {"kind": "pixels", "size": 16} and txt["embedding"]["kind"] == "sentence"
    assert img["labels"]["3"]["n_real"] == 2 and img["labels"]["3"]["n_synthetic"] == 2
    assert img["labels"]["3"]["mmd"] <= 0.0  # identical sets: the unbiased estimate is at most 0
    assert txt["labels"]["track_order"]["diversity_synthetic"] == 0.0 < txt["labels"]["track_order"]["diversity_real"]
    assert txt["labels"]["refund_request"]["mmd"] > 0.1  # every synthetic text is about tracking
    acc = d["label_consistency_accuracy"]
    assert acc["text_label_consistency"] == {"split": "eval", "n": 9, "accuracy": 1.0}  # eval = the train texts
    assert set(acc) == {"text_label_consistency"}  # no real eval digits here
    assert run_diagnostics(run, label_accuracy=False, max_per_label=2).keys() == {"image", "text"}
