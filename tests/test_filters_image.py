"""Image filters on crafted images: quality (size, blur, exposure), label consistency on digits,
CLIP score and a user-provided classifier with tiny models built in code."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from examples.filters import digits_reference, tiny_clip, tiny_vit_classifier
from PIL import Image

from synth.errors import ConfigError, InputError
from synth.filters import _scores as S
from synth.filters._base import reference_rows
from synth.filters.clip_score import ClipScore
from synth.filters.image_quality import ImageQuality
from synth.filters.label_consistency import ImageLabelConsistency
from synth.filters.model_scorer import ModelScorer
from synth.sample import Sample
from synth.steps import Context


def put(ctx, name: str, arr: np.ndarray | bytes, label: str = "3", **kw) -> Sample:
    """A synthetic image sample whose payload is ``arr`` (uint8 array, or raw bytes)."""
    abs_path, rel = ctx.payload_path("gen", f"{name}.png")
    abs_path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(arr, bytes):
        abs_path.write_bytes(arr)
    else:
        Image.fromarray(np.asarray(arr, dtype=np.uint8)).save(abs_path)
    return Sample(id=f"gen-s0-{name}", modality="image", origin="synthetic", label=label, path=rel, generator="gen", **kw)


def sharp(size: int = 64, seed: int = 0) -> np.ndarray:
    """Random blocks of 4x4 pixels: sharp edges, mid brightness."""
    rng = np.random.default_rng(seed)
    return np.kron(rng.integers(0, 256, (size // 4, size // 4)), np.ones((4, 4))).astype(np.uint8)


def two_level(lo: int, hi: int, size: int = 32) -> np.ndarray:
    a = np.full((size, size), lo, np.uint8)
    a[::2, ::2] = hi
    a[1::2, 1::2] = hi
    return a


# ---- pure functions -----------------------------------------------------------------------------


def test_laplacian_matches_opencv():
    img = np.random.default_rng(1).integers(0, 256, (13, 17)).astype(np.float64)
    assert S.laplacian_variance(img) == pytest.approx(cv2.Laplacian(img, cv2.CV_64F).var(), rel=1e-9)


def test_image_stats_constant_and_rgb():
    st = S.image_stats(np.full((10, 20, 3), 128, np.uint8))
    assert st["sharpness"] == 0 and st["contrast"] == 0 and st["aspect"] == 2.0 and st["width"] == 20
    assert st["brightness"] == pytest.approx(128 / 255)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 255
    assert S.to_gray(rgba)[0, 0] == pytest.approx(0.299 * 255)


def test_blur_lowers_sharpness():
    img = sharp()
    blurred = cv2.GaussianBlur(img, (0, 0), 3)
    assert S.laplacian_variance(S.to_gray(blurred)) < S.laplacian_variance(S.to_gray(img)) / 20


# ---- image_quality ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "make", "params", "reason"),
    [
        ("sharp", lambda: sharp(), {}, None),
        ("constant", lambda: np.full((64, 64), 128), {}, "low_contrast"),
        ("black", lambda: np.zeros((64, 64)), {}, "low_contrast"),
        ("blurred", lambda: cv2.GaussianBlur(sharp(), (0, 0), 3), {}, "blurry"),
        ("dark", lambda: two_level(0, 30), {"min_brightness": 0.1}, "too_dark"),
        ("bright", lambda: two_level(230, 255), {"max_brightness": 0.9}, "too_bright"),
        ("tiny", lambda: sharp(4), {}, "too_small"),
        ("stretched", lambda: np.kron(sharp(16), np.ones((1, 8))), {}, "aspect"),
        ("huge", lambda: sharp(64), {"max_width": 32}, "too_large"),
    ],
)
def test_image_quality(ctx, name, make, params, reason):
    [out] = ImageQuality(**params).process([put(ctx, name, make())], ctx)
    assert out.reject_reason == (f"filter:image_quality.{reason}" if reason else None)
    assert {"image_quality.sharpness", "image_quality.contrast", "image_quality.brightness"} <= set(out.scores)


def test_unreadable_payload_is_rejected(ctx):
    [out] = ImageQuality().process([put(ctx, "junk", b"not a png")], ctx)
    assert out.reject_reason == "filter:image_quality.unreadable" and out.scores == {"image_quality.readable": 0.0}


def test_digit_thresholds_keep_real_digits_and_reject_blurred_ones(ctx, real_images):
    f = ImageQuality(min_sharpness=5000, min_contrast=0.1, min_brightness=0.1, max_brightness=0.7)  # the smoke settings
    real = f.process([s.copy(origin="synthetic") for s in real_images], ctx)
    assert all(s.kept for s in real), [s.scores for s in real if not s.kept]
    blurred = [put(ctx, f"b{i}", cv2.GaussianBlur(np.asarray(s.load_image(ctx.run_dir)), (0, 0), 1.0)) for i, s in enumerate(real_images)]
    assert all(s.reject_reason == "filter:image_quality.blurry" for s in f.process(blurred, ctx))


# ---- label consistency (digits) ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits_ref(tmp_path_factory):
    ref = digits_reference(tmp_path_factory.mktemp("digits"), per_label=12)
    from pathlib import Path

    from synth.manifest import read_samples

    rows = read_samples(Path(ref) / "state" / "sources.parquet")
    return ref, [s for s in rows if s.split == "eval"]


def test_image_label_consistency_on_digits(digits_ref):
    ref, evals = digits_ref
    ctx = Context(run_dir=ref)  # the reference run dir doubles as this run: setup reads state/sources.parquet
    f = ImageLabelConsistency()
    f.setup(ctx)
    assert f.labels == [str(i) for i in range(10)] and f._size == (8, 8)
    assert f.accuracy(evals, ref) >= 0.8
    right = [s.copy(origin="synthetic", generator="g") for s in evals]
    wrong = [s.copy(origin="synthetic", generator="g", label=str((int(s.label) + 1) % 10)) for s in evals]
    kept_right = np.mean([s.kept for s in f.process(right, ctx)])
    out_wrong = f.process(wrong, ctx)
    rejected_wrong = np.mean([s.reject_reason == "filter:image_label_consistency.label_mismatch" for s in out_wrong])
    assert kept_right >= 0.85 and rejected_wrong >= 0.85, (kept_right, rejected_wrong)
    assert all(-1 <= s.scores["image_label_consistency.margin"] <= 1 for s in out_wrong)
    assert ctx.extra["filter_models"]["image_label_consistency"]["model"] == "pixels"


def test_image_label_unknown_label_and_explicit_reference(digits_ref, tmp_path):
    ref, evals = digits_ref
    f = ImageLabelConsistency(reference=ref, min_margin=None, min_prob=0.05)
    f.setup(Context(run_dir=tmp_path))  # explicit reference: the run dir has no sources
    [odd] = f.process([evals[0].copy(origin="synthetic", label="cat")], Context(run_dir=ref))
    assert odd.reject_reason == "filter:image_label_consistency.unknown_label" and odd.scores == {"image_label_consistency.known": 0.0}
    assert f.thresholds() == {"image_label_consistency.known": [(">=", 1.0)], "image_label_consistency.prob": [(">=", 0.05)]}


def test_missing_reference_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match="sources.parquet"):
        ImageLabelConsistency().setup(Context(run_dir=tmp_path))
    with pytest.raises(InputError, match="does not exist"):
        reference_rows(tmp_path / "nope", None, "image")
    with pytest.raises(ConfigError):
        from synth.config import build_step

        build_step({"type": "image_label_consistency", "method": "clip_zero_shot"}, "steps", 0)  # needs model


@pytest.mark.parametrize("method", ["clip_zero_shot", "clip_linear"])
def test_image_label_consistency_with_clip(digits_ref, method):
    ref, evals = digits_ref
    f = ImageLabelConsistency(method=method, model=tiny_clip(), prompt_template="a photo of the digit {label}")
    f.setup(Context(run_dir=ref))
    out = f.process([s.copy(origin="synthetic") for s in evals[:10]], Context(run_dir=ref))
    probs = f.affinities(evals[:10], ref)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    for s, row in zip(out, probs):
        j = f.labels.index(s.label)
        assert s.scores["image_label_consistency.prob"] == pytest.approx(row[j], abs=1e-5)
        assert s.scores["image_label_consistency.margin"] == pytest.approx(row[j] - np.delete(row, j).max(), abs=1e-5)


# ---- CLIP score ----------------------------------------------------------------------------------------


def test_clip_score_matches_clip_and_thresholds(ctx, real_images):
    import torch
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    path = tiny_clip()
    prompts = ["a photo of the digit seven", "a blurry drawing of a cat", "a handwritten number two", "a low quality photo of a dog"]
    samples = [s.copy(origin="synthetic", prompt=p) for s, p in zip(real_images, prompts)]
    samples.append(real_images[5].copy(origin="synthetic", prompt=None))  # nothing to compare: unscored, kept
    f = ClipScore(model=path, min_score=0.0)
    f.setup(ctx)
    scored = f.process([s.copy() for s in samples], ctx)
    got = [s.scores.get("clip_score.clip_score") for s in scored]
    assert got[-1] is None and scored[-1].kept
    model, tok, proc = CLIPModel.from_pretrained(path), AutoTokenizer.from_pretrained(path), AutoImageProcessor.from_pretrained(path)
    with torch.no_grad():
        out = model(
            **tok(prompts, padding=True, return_tensors="pt"),
            pixel_values=proc(images=[s.load_image(ctx.run_dir).convert("RGB") for s in samples[:4]], return_tensors="pt")["pixel_values"],
        )
    cos = (out.logits_per_image / model.logit_scale.exp()).diagonal().detach().numpy()
    assert got[:4] == pytest.approx([100 * max(c, 0) for c in cos], abs=1e-3)
    assert max(got[:4]) > 0
    cut = sorted(got[:4])[2]  # keep the top two
    strict = ClipScore(model=path, min_score=cut)
    assert [strict.decide(s.scores) for s in scored[:4]].count("clip_score.misaligned") == sum(g < cut for g in got[:4])


def test_clip_score_label_template(ctx, real_images):
    f = ClipScore(model=tiny_clip(), use_prompt=False, text_template="a photo of the digit {label}", min_score=None)
    f.setup(ctx)
    out = f.process([s.copy(origin="synthetic", prompt="ignored") for s in real_images[:3]], ctx)
    assert all("clip_score.clip_score" in s.scores and s.kept for s in out)


# ---- user-provided classifier ----------------------------------------------------------------------------


def test_model_scorer_image(ctx, real_images):
    import torch
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    path = tiny_vit_classifier()
    f = ModelScorer(name="nsfw", model=path, task="image-classification", labels=["nsfw"], score_name="p_nsfw")
    f.setup(ctx)
    samples = [s.copy(origin="synthetic") for s in real_images[:6]]
    out = f.process(samples, ctx)
    model, proc = AutoModelForImageClassification.from_pretrained(path), AutoImageProcessor.from_pretrained(path)
    with torch.no_grad():
        p = torch.softmax(
            model(**proc(images=[s.load_image(ctx.run_dir).convert("RGB") for s in samples], return_tensors="pt")).logits, -1
        )[:, 1]
    assert [s.scores["nsfw.p_nsfw"] for s in out] == pytest.approx(p.tolist(), abs=1e-5)
    cut = float(np.median(p.numpy()))
    strict = ModelScorer(name="nsfw", model=path, task="image-classification", labels=["nsfw"], score_name="p_nsfw", max_score=cut)
    assert strict.thresholds() == {"nsfw.p_nsfw": [("<=", cut)]}
    assert sum(strict.decide(s.scores) == "nsfw.p_nsfw_high" for s in out) == int((p.numpy() > cut).sum())
    assert not f.applies_to(Sample(id="t", modality="text", origin="synthetic"))


def test_model_scorer_unknown_label(ctx):
    with pytest.raises(ConfigError, match="Valid options: nsfw, sfw"):
        ModelScorer(model=tiny_vit_classifier(), task="image-classification", labels=["aesthetic"]).setup(ctx)
