"""The diffusion generator on tiny real diffusers models (built in code, saved, loaded back through
the generator's own from_pretrained path), the shipped digits model, and its pure helpers."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from examples.image_generators import TINY_SIZE, tiny_sd_path, tiny_unet_path

from synth.config import build_step
from synth.errors import ConfigError, InputError
from synth.generators._image_common import call_halving, draw_strength, json_safe, prompt_runs, select_parents, tasks_per_label
from synth.generators.diffusion import DiffusionGenerator
from synth.sample import Sample
from synth.steps import Context, Task
from synth.util import file_tree_hash, sha256_bytes

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
DIGITS_MODEL = Path(__file__).resolve().parent.parent / "models" / "digits-diffusion"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread (and do not fight other processes for cores)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """20 real digit images (2 per class) made once for this module, with absolute payload paths
    so every test's run directory can use them."""
    from conftest import real_image_samples

    ctx = Context(run_dir=tmp_path_factory.mktemp("real"))
    return [s.copy(path=str(s.resolve(ctx.run_dir))) for s in real_image_samples(ctx, per_label=2)]


def run(params: dict, real: list[Sample], run_dir: Path, seed: int = 7, name: str | None = None, wrap=None):
    """Set up, plan and generate like the engine does; returns (samples, ctx, step)."""
    ctx = Context(run_dir=run_dir, run_seed=seed, run_id="t")
    g = DiffusionGenerator(name=name, **params)
    g.setup(ctx)
    if wrap is not None:
        g._backend.pipe = wrap(g._backend.pipe)
    try:
        return list(g.generate(g.plan(g.inputs(real), ctx), ctx)), ctx, g
    finally:
        g.teardown()


class CountingPipe:
    """Delegates to the real pipeline and records each call's batch (generators) size."""

    def __init__(self, pipe, oom_above: int | None = None):
        self.pipe, self.calls, self.kwargs, self.oom_above = pipe, [], [], oom_above

    def __call__(self, **kw):
        self.calls.append(len(kw["generator"]))
        self.kwargs.append(kw)
        if self.oom_above is not None and len(kw["generator"]) > self.oom_above:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.pipe(**kw)


def shas(samples):
    return [(s.id, s.content_sha256) for s in samples]


# ---- txt2img --------------------------------------------------------------------------------------
def test_txt2img_images_sizes_counts_and_provenance(digits, tmp_path):
    params = {
        "model": tiny_sd_path(),
        "labels": ["3", "7"],
        "num_per_label": 3,
        "steps": 2,
        "height": 16,
        "width": 24,
        "label_names": {"3": "three", "7": "seven"},
        "prompts": ["a photo of a {label}", "a drawing of the digit {label}"],
        "negative_prompt": "blurry, low quality",
        "batch_size": 4,
    }
    out, rctx, g = run(params, digits, tmp_path / "run")
    assert [s.label for s in out] == ["3"] * 3 + ["7"] * 3
    assert {s.id for s in out} == {f"diffusion-s7-{i:06d}" for i in range(6)}
    for s in out:
        img = s.load_image(rctx.run_dir)
        assert img.size == (24, 16) and img.mode == "RGB"
        data = (rctx.run_dir / s.path).read_bytes()
        assert s.content_sha256 == sha256_bytes(data) and s.uri == s.path == f"data/diffusion/{s.id}.png"
        assert s.origin == "synthetic" and s.generator == "diffusion" and s.parent_id is None and s.kept
        assert s.model == tiny_sd_path() and s.model_revision == file_tree_hash(tiny_sd_path())
        assert s.seed == g.sample_seed(Task(int(s.id[-6:])), rctx)
        word = {"3": "three", "7": "seven"}[s.label]
        assert s.prompt == s.params["template"].format(label=word) and s.params["label_name"] == word
        assert s.params["negative_prompt"] == "blurry, low quality"
        assert s.params["scheduler"] == "DDIMScheduler" and s.params["pipeline"] == "StableDiffusionPipeline"
        assert (s.params["steps"], s.params["guidance"], s.params["height"], s.params["width"]) == (2, 7.5, 16, 24)
        json.dumps(s.params)  # JSON-safe as stored in the manifest
    assert len({s.content_sha256 for s in out}) == 6
    assert rctx.counters["diffusion"]["pipeline_calls"] == 2  # 6 images in batches of 4


def test_same_seed_same_bytes_other_seed_other_bytes(digits, tmp_path):
    params = {"model": tiny_sd_path(), "labels": ["1", "2"], "num_per_label": 2, "steps": 2, "batch_size": 2}
    a, _, _ = run(params, digits, tmp_path / "a")
    b, _, _ = run(params, digits, tmp_path / "b")
    c, _, _ = run(params, digits, tmp_path / "c", seed=8)
    assert shas(a) == shas(b)
    assert [s.seed for s in a] == [s.seed for s in b] != [s.seed for s in c]
    assert not {s.content_sha256 for s in a} & {s.content_sha256 for s in c}
    assert [(tmp_path / "a" / s.path).read_bytes() for s in a] == [(tmp_path / "b" / s.path).read_bytes() for s in b]


def test_native_size_is_the_default(digits, tmp_path):
    out, rctx, _ = run({"model": tiny_sd_path(), "labels": ["0"], "num_per_label": 1, "steps": 1}, digits, tmp_path / "run")
    assert out[0].load_image(rctx.run_dir).size == (TINY_SIZE, TINY_SIZE)
    assert (out[0].params["steps"], out[0].params["guidance"]) == (1, 7.5)


# ---- batching ---------------------------------------------------------------------------------------
def test_one_pipeline_call_per_batch(digits, tmp_path):
    wrapped = []
    params = {
        "model": tiny_sd_path(),
        "labels": ["4"],
        "num_per_label": 5,
        "steps": 1,
        "batch_size": 2,
        "prompts": ["a photo of a {label}", "a drawing of the digit {label}", "a blurry {label}"],
    }
    out, rctx, _ = run(params, digits, tmp_path / "run", wrap=lambda p: wrapped.append(CountingPipe(p)) or wrapped[-1])
    assert wrapped[0].calls == [2, 2, 1] and rctx.counters["diffusion"]["pipeline_calls"] == 3
    assert [s.params["batch_size"] for s in out] == [2, 2, 2, 2, 1]
    for kw in wrapped[0].kwargs:  # equal prompts in a batch go once, with num_images_per_prompt
        assert len(kw["prompt"]) * kw["num_images_per_prompt"] == len(kw["generator"])


def test_images_per_prompt_share_one_prompt_draw(digits, tmp_path):
    wrapped = []
    params = {
        "model": tiny_sd_path(),
        "labels": ["5"],
        "num_per_label": 6,
        "images_per_prompt": 3,
        "steps": 1,
        "batch_size": 6,
        "prompts": ["a photo of a {label}", "a drawing of the digit {label}", "a blurry {label}", "the {label}"],
    }
    out, _, _ = run(params, digits, tmp_path / "run", wrap=lambda p: wrapped.append(CountingPipe(p)) or wrapped[-1])
    assert len({s.prompt for s in out[:3]}) == 1 and len({s.prompt for s in out[3:]}) == 1
    kw = wrapped[0].kwargs[0]
    assert kw["num_images_per_prompt"] in (3, 6) and len(kw["generator"]) == 6
    assert len({s.content_sha256 for s in out}) == 6  # one generator per sample: distinct images


def test_out_of_memory_halves_the_batch_and_is_counted(digits, tmp_path):
    wrapped = []
    params = {"model": tiny_sd_path(), "labels": ["6"], "num_per_label": 5, "steps": 1, "batch_size": 4}
    out, rctx, g = run(params, digits, tmp_path / "run", wrap=lambda p: wrapped.append(CountingPipe(p, oom_above=1)) or wrapped[-1])
    assert len(out) == 5 and all(s.kept for s in out)
    assert wrapped[0].calls == [4, 2, 1, 1, 2, 1, 1, 1]  # 4 -> 2+2 -> 1+1 each; then the remaining one alone
    assert rctx.counters["diffusion"]["oom_halvings"] == 3 and g._batch == 1


def test_threads_are_scoped_to_the_step_and_recorded(digits, tmp_path):
    seen = []

    class ThreadProbe(CountingPipe):
        def __call__(self, **kw):
            seen.append(torch.get_num_threads())
            return super().__call__(**kw)

    torch.set_num_threads(2)
    try:
        params = {"model": tiny_sd_path(), "labels": ["1"], "num_per_label": 2, "steps": 1, "threads": 1}
        out, _, _ = run(params, digits, tmp_path / "run", wrap=ThreadProbe)
        assert seen == [1] and torch.get_num_threads() == 2 and out[0].params["cpu_threads"] == 1
    finally:
        torch.set_num_threads(1)


def test_call_halving_reraises_other_errors_and_single_item_oom():
    with pytest.raises(ValueError):
        call_halving([1, 2], lambda b: (_ for _ in ()).throw(ValueError("x")), lambda n: None)
    with pytest.raises(RuntimeError, match="out of memory"):
        call_halving([1], lambda b: (_ for _ in ()).throw(RuntimeError("CUDA out of memory")), lambda n: None)
    seen = []
    assert call_halving(
        [1, 2, 3],
        lambda b: [x * 10 for x in b] if len(b) == 1 else (_ for _ in ()).throw(RuntimeError("MPS backend out of memory")),
        seen.append,
    ) == [10, 20, 30]
    assert seen == [3, 2]


# ---- img2img ---------------------------------------------------------------------------------------
def test_img2img_variants_of_digits(digits, tmp_path):
    params = {
        "model": tiny_sd_path(),
        "mode": "img2img",
        "labels": ["1", "8"],
        "num_per_parent": 2,
        "steps": 4,
        "strength": [0.3, 0.9],
        "batch_size": 4,
    }
    out, rctx, _ = run(params, digits, tmp_path / "run")
    parents = {s.id: s for s in digits if s.label in ("1", "8")}
    assert len(out) == 2 * len(parents) == 8
    assert {s.parent_id for s in out} == set(parents)
    for s in out:
        assert s.label == parents[s.parent_id].label
        assert s.load_image(rctx.run_dir).size == (TINY_SIZE, TINY_SIZE)
        k = s.params["strength"] * 4
        assert k == round(k) and 1 <= k <= 4 and 0.3 <= s.params.get("strength_drawn", s.params["strength"]) <= 0.9
        assert s.params["pipeline"] == "StableDiffusionImg2ImgPipeline"
    again, _, _ = run(params, digits, tmp_path / "again")
    assert sorted(shas(out)) == sorted(shas(again))


def test_img2img_batches_share_one_strength(digits, tmp_path):
    wrapped = []
    params = {"model": tiny_sd_path(), "mode": "img2img", "num_per_parent": 1, "steps": 2, "strength": [0.2, 1.0], "batch_size": 8}
    out, _, _ = run(params, digits, tmp_path / "run", wrap=lambda p: wrapped.append(CountingPipe(p)) or wrapped[-1])
    by_strength: dict[float, int] = {}
    for s in out:
        by_strength[s.params["strength"]] = by_strength.get(s.params["strength"], 0) + 1
    assert set(by_strength) <= {0.5, 1.0} and sum(wrapped[0].calls) == len(out) == 20
    calls = sorted((kw["strength"], len(kw["generator"])) for kw in wrapped[0].kwargs)  # full batches of one strength, then the rest
    assert calls == sorted((st, size) for st, n in by_strength.items() for size in [8] * (n // 8) + [n % 8] * (n % 8 > 0))


# ---- class-conditional ---------------------------------------------------------------------------------
def test_class_conditional_tiny_unet(digits, tmp_path):
    params = {"model": tiny_unet_path(), "mode": "class_conditional", "labels": ["2", "9"], "num_per_label": 3, "steps": 3, "batch_size": 4}
    out, rctx, _ = run(params, digits, tmp_path / "run")
    assert [s.label for s in out] == ["2"] * 3 + ["9"] * 3
    for s in out:
        img = s.load_image(rctx.run_dir)
        assert img.size == (8, 8) and img.mode == "L"
        assert s.prompt is None and s.params["class_index"] == int(s.label) and s.params["null_class_index"] == 10
        assert s.params["guidance"] == 2.0 and s.params["scheduler"] == "DDIMScheduler"
    again, _, _ = run(params, digits, tmp_path / "again")
    assert shas(out) == shas(again)
    with pytest.raises(ConfigError, match="label 'cat' is not a class"):
        run({**params, "labels": ["cat"]}, digits, tmp_path / "bad")


def test_class_conditional_scheduler_by_name(digits, tmp_path):
    params = {
        "model": tiny_unet_path(),
        "mode": "class_conditional",
        "labels": ["0"],
        "num_per_label": 2,
        "steps": 2,
        "scheduler": "EulerAncestralDiscreteScheduler",
        "guidance": 1.0,
    }
    out, _, _ = run(params, digits, tmp_path / "run")
    assert {s.params["scheduler"] for s in out} == {"EulerAncestralDiscreteScheduler"} and out[0].params["guidance"] == 1.0
    with pytest.raises(ConfigError, match="not compatible.*Valid options: .*DDIMScheduler"):
        run({**params, "scheduler": "FlowMatchEulerDiscreteScheduler"}, digits, tmp_path / "run")


@pytest.mark.skipif(
    not (DIGITS_MODEL / "synth_model.json").exists(),
    reason="models/digits-diffusion not trained yet (python scripts/train_digits_diffusion.py --out models/digits-diffusion)",
)
def test_shipped_digits_model_generates_recognisable_digits(digits, tmp_path):
    import numpy as np
    from sklearn.svm import SVC

    from synth.splits import digits_split

    meta = json.loads((DIGITS_MODEL / "synth_model.json").read_text())
    params = {"model": "models/digits-diffusion", "mode": "class_conditional", "num_per_label": 3, "steps": 10, "batch_size": 30}
    out, rctx, _ = run(params, digits, tmp_path / "run")
    assert len(out) == 30 and sorted({s.label for s in out}) == meta["class_labels"]
    images = np.stack([np.asarray(s.load_image(rctx.run_dir)) for s in out])
    assert images.shape == (30, *meta["image_size"]) and out[0].model_revision == file_tree_hash(DIGITS_MODEL)
    x, y, is_eval = digits_split(eval_fraction=0.3, seed=0)
    clf = SVC(gamma="scale", C=10.0).fit(x[~is_eval].reshape(-1, 64) / 255.0, y[~is_eval])
    agree = (clf.predict(images.reshape(30, -1) / 255.0) == np.array([int(s.label) for s in out])).mean()
    assert agree >= 0.8, f"only {agree:.0%} of generated digits are classified as their label"


# ---- Hub ids: resolved commit, offline from the HF cache ---------------------------------------------------
def test_hub_id_loads_from_cache_and_records_the_commit(digits, tmp_path):
    from huggingface_hub import constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = Path(constants.HF_HUB_CACHE) / "models--synth-test--tiny-sd"
    if not repo.exists():
        shutil.copytree(tiny_sd_path(), repo / "snapshots" / commit)
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(commit)
    out, _, _ = run({"model": "synth-test/tiny-sd", "labels": ["0"], "num_per_label": 1, "steps": 1}, digits, tmp_path / "run")
    assert out[0].model == "synth-test/tiny-sd" and out[0].model_revision == commit
    unet_repo = Path(constants.HF_HUB_CACHE) / "models--synth-test--tiny-unet"
    if not unet_repo.exists():
        shutil.copytree(tiny_unet_path(), unet_repo / "snapshots" / commit)
        (unet_repo / "refs").mkdir()
        (unet_repo / "refs" / "main").write_text(commit)
    params = {"model": "synth-test/tiny-unet", "mode": "class_conditional", "labels": ["1"], "num_per_label": 1, "steps": 1}
    out, _, _ = run(params, digits, tmp_path / "unet")
    assert out[0].model_revision == commit and out[0].load_image(tmp_path / "unet").size == (8, 8)
    with pytest.raises(InputError, match="not a local folder and the Hub cannot resolve it"):
        run({"model": "synth-test/absent-model", "labels": ["0"]}, digits, tmp_path / "run")


# ---- configuration errors (build time) ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ({"mode": "img2img", "num_per_label": 2}, "'num_per_label' does not apply to mode 'img2img'"),
        ({"strength": 0.5}, "'strength' does not apply to mode 'txt2img'"),
        ({"mode": "class_conditional", "prompts": ["a {label}"]}, "'prompts' does not apply"),
        ({"mode": "class_conditional", "vae_tiling": True}, "'vae_tiling' applies to pipelines"),
        ({"prompts": ["a {lable}"]}, r"prompts\[0\] 'a \{lable\}' uses \['lable'\]"),
        ({"label_prompts": {"3": ["{label"]}}, r"label_prompts.3\[0\]"),
        ({"mode": "img2img", "strength": [0.8, 0.2]}, "strength must be in"),
        ({"device": "gpu"}, "device"),
        ({"dtype": "fp8"}, "dtype"),
        ({"setps": 3}, "unknown key 'setps'"),
    ],
)
def test_bad_parameters_are_config_errors_naming_the_key(extra, match):
    with pytest.raises(ConfigError, match=match):
        build_step({"type": "diffusion", "model": "x", **extra}, "steps", 0)


def test_scheduler_and_local_revision_errors(digits, tmp_path):
    with pytest.raises(ConfigError, match="'revision' applies to Hub ids only"):
        run({"model": tiny_sd_path(), "revision": "main"}, digits, tmp_path / "run")
    with pytest.raises(ConfigError, match="multiples of 8, got 12 x 16"):
        run({"model": tiny_sd_path(), "height": 12}, digits, tmp_path / "run")
    out, _, _ = run(
        {"model": tiny_sd_path(), "labels": ["0"], "num_per_label": 1, "steps": 2, "scheduler": "EulerDiscreteScheduler"},
        digits,
        tmp_path / "run",
    )
    assert out[0].params["scheduler"] == "EulerDiscreteScheduler"


def test_memory_options_apply_to_the_pipeline(digits, tmp_path):
    params = {"model": tiny_sd_path(), "labels": ["2"], "num_per_label": 2, "steps": 1, "attention_slicing": True, "vae_tiling": True}
    ctx = Context(run_dir=tmp_path, run_seed=7)
    g = DiffusionGenerator(**params)
    g.setup(ctx)
    assert g._backend.pipe.vae.use_tiling
    out = list(g.generate(g.plan(digits, ctx), ctx))
    plain, _, _ = run({k: v for k, v in params.items() if k not in ("attention_slicing", "vae_tiling")}, digits, tmp_path / "plain")
    assert len(out) == 2 and [s.load_image(tmp_path).size for s in out] == [(TINY_SIZE, TINY_SIZE)] * 2
    assert [s.id for s in out] == [s.id for s in plain]


def test_empty_input_plans_nothing(tmp_path):
    ctx = Context(run_dir=tmp_path)
    g = DiffusionGenerator(model=tiny_sd_path(), steps=1)
    g.setup(ctx)
    assert g.plan([], ctx) == [] and list(g.generate([], ctx)) == []


# ---- pure helpers ------------------------------------------------------------------------------------
def test_draw_strength_snaps_ranges_to_whole_steps():
    rng = random.Random(0)
    assert draw_strength(rng, 0.37, 10) == (0.37, 0.37)
    for _ in range(200):
        used, drawn = draw_strength(rng, (0.01, 0.99), 7)
        assert 0.01 <= drawn <= 0.99 and used in {k / 7 for k in range(1, 8)} and abs(used - drawn) <= 1 / 7


def test_prompt_runs_and_plans():
    assert prompt_runs(["a", "a", "b", "b"]) == 2 and prompt_runs(["a"] * 4) == 4
    assert prompt_runs(["a", "b", "b"]) == 1 and prompt_runs(["a", "a", "b"]) == 1
    tasks = tasks_per_label(["x", "y"], 5, group=2)
    assert [t.index for t in tasks] == list(range(10)) and [t.extra["group"] for t in tasks[:5]] == [0, 0, 2, 2, 4]
    real = [Sample(id=f"r{i}", modality="image", origin="real", label="ab"[i % 2], path=f"{i}.png") for i in range(6)]
    assert [s.id for s in select_parents(real, ["a"], max_per_label=2)] == ["r0", "r2"]


def test_json_safe():
    import numpy as np

    got = json_safe({"a": np.float32(0.5), "b": (1, np.int64(2)), "c": np.arange(4), "d": np.zeros(100), "e": float("nan"), 3: {1, 2}})
    assert got["a"] == 0.5 and got["b"] == [1, 2] and got["c"] == [0, 1, 2, 3] and got["e"] == "nan" and got["3"] == [1, 2]
    assert got["d"]["shape"] == [100] and len(got["d"]["sha256"]) == 16
    json.dumps(got, allow_nan=False)
