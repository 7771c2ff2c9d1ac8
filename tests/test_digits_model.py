"""The shipped digits diffusion model loads through the standard diffusers path and samples deterministically."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

REPO_ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO_ROOT / "models" / "digits-diffusion"
SCRIPT = REPO_ROOT / "scripts" / "train_digits_diffusion.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("train_digits_diffusion", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return _load_script()


@pytest.fixture(scope="module")
def model():
    from diffusers import DDIMScheduler, UNet2DModel

    assert MODEL_DIR.is_dir(), f"{MODEL_DIR} missing: run python scripts/train_digits_diffusion.py --out models/digits-diffusion"
    unet = UNet2DModel.from_pretrained(MODEL_DIR, subfolder="unet", use_safetensors=True).eval()
    scheduler = DDIMScheduler.from_pretrained(MODEL_DIR, subfolder="scheduler")
    return unet, scheduler


def _gens(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


def test_folder_holds_only_safetensors_weights():
    files = sorted(p.relative_to(MODEL_DIR).as_posix() for p in MODEL_DIR.rglob("*") if p.is_file())
    assert "unet/config.json" in files
    assert "unet/diffusion_pytorch_model.safetensors" in files
    assert "scheduler/scheduler_config.json" in files
    assert "synth_model.json" in files and "README.md" in files
    pickles = [f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    assert pickles == []
    total = sum(p.stat().st_size for p in MODEL_DIR.rglob("*") if p.is_file())
    assert total < 3_000_000


def test_metadata_describes_the_model(model):
    unet, scheduler = model
    meta = json.loads((MODEL_DIR / "synth_model.json").read_text())
    assert meta["class_labels"] == [str(i) for i in range(10)]
    assert meta["image_size"] == [8, 8] and meta["mode"] == "L"
    assert meta["scheduler_class"] == type(scheduler).__name__
    assert meta["sample_size"] == unet.config.sample_size
    assert meta["guidance"]["null_class_index"] == unet.config.num_class_embeds - 1
    assert "digits_split" in meta["training_data"]["split"]
    assert meta["license"] == "BSD-3-Clause"


def test_sample_shape_dtype_range(model, script):
    unet, scheduler = model
    images = script.sample(unet, scheduler, [0, 1, 7], _gens([1, 2, 3]), steps=10)
    assert images.shape == (3, 8, 8)
    assert images.dtype == np.uint8
    assert images.min() >= 0 and images.max() <= 255
    assert images.max() > 128  # strokes are drawn, not a blank image


def test_same_seed_same_bytes_different_seed_different_bytes(model, script):
    unet, scheduler = model
    a = script.sample(unet, scheduler, [3, 3], _gens([5, 6]), steps=10)
    b = script.sample(unet, scheduler, [3, 3], _gens([5, 6]), steps=10)
    c = script.sample(unet, scheduler, [3, 3], _gens([7, 8]), steps=10)
    assert a.tobytes() == b.tobytes()
    assert a[0].tobytes() != a[1].tobytes()
    assert a[0].tobytes() != c[0].tobytes() and a[1].tobytes() != c[1].tobytes()


def test_a_sample_does_not_depend_on_its_batch(model, script):
    unet, scheduler = model
    both = script.sample(unet, scheduler, [2, 8], _gens([21, 22]), steps=10)
    alone = np.concatenate(
        [script.sample(unet, scheduler, [2], _gens([21]), steps=10), script.sample(unet, scheduler, [8], _gens([22]), steps=10)]
    )
    assert both.tobytes() == alone.tobytes()


def test_guided_sampling_is_deterministic(model, script):
    unet, scheduler = model
    a = script.sample(unet, scheduler, [4, 9], _gens([11, 12]), steps=10, guidance_scale=2.0)
    b = script.sample(unet, scheduler, [4, 9], _gens([11, 12]), steps=10, guidance_scale=2.0)
    assert a.shape == (2, 8, 8) and a.tobytes() == b.tobytes()


def test_bad_inputs_raise(model, script):
    unet, scheduler = model
    with pytest.raises(ValueError, match="one generator per label"):
        script.sample(unet, scheduler, [1, 2], _gens([1]), steps=5)
    with pytest.raises(ValueError, match="labels must be in"):
        script.sample(unet, scheduler, [10], _gens([1]), steps=5)
