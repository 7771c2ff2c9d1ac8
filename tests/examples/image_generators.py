"""Contract-test parameters for the image generators, and the tiny models they run on.

The models are real diffusers / transformers classes at tiny sizes, built in code under a fixed
seed and saved with ``save_pretrained`` once per test session (cached), then loaded back through
the generator's own ``from_pretrained`` path. The CLIP tokenizer comes from tests/fixtures.
"""

from __future__ import annotations

import functools
import json
import tempfile
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
CLIP_TOKENIZER = FIXTURES / "clip_tokenizer"
TINY_SIZE = 16  # tiny SD: unet sample_size 8 x vae_scale_factor 2


@functools.cache
def _session_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="synth-tiny-models-"))


def build_tiny_sd(out: Path) -> Path:
    """A StableDiffusionPipeline with tiny UNet2DConditionModel / AutoencoderKL / CLIPTextModel
    (the shapes of diffusers' own fast tests), saved to ``out``."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(4, 8),
        layers_per_block=1,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        norm_num_groups=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
    )
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=[4, 8],
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        norm_num_groups=2,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
    )
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=0,
            eos_token_id=2,
            pad_token_id=1,
            hidden_size=32,
            intermediate_size=37,
            layer_norm_eps=1e-5,
            num_attention_heads=4,
            num_hidden_layers=2,
            vocab_size=1000,
        )
    )
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=CLIPTokenizer.from_pretrained(CLIP_TOKENIZER),
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        image_encoder=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    return out


def build_tiny_unet(out: Path, classes: int = 10) -> Path:
    """A class-conditional UNet2DModel (1 x 8 x 8, ``classes`` + a null class) with a DDIM
    scheduler and a synth_model.json, laid out like models/digits-diffusion."""
    import torch
    from diffusers import DDIMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 16),
        layers_per_block=1,
        norm_num_groups=4,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        num_class_embeds=classes + 1,
    )
    unet.save_pretrained(out / "unet", safe_serialization=True)
    DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", timestep_spacing="trailing").save_pretrained(
        out / "scheduler"
    )
    meta = {
        "class_labels": [str(i) for i in range(classes)],
        "image_size": [8, 8],
        "recommended_steps": 4,
        "guidance": {"supported": True, "null_class_index": classes, "recommended_scale": 2.0},
    }
    (out / "synth_model.json").write_text(json.dumps(meta))
    return out


@functools.cache
def tiny_sd_path() -> str:
    return str(build_tiny_sd(_session_dir() / "tiny-sd"))


@functools.cache
def tiny_unet_path() -> str:
    return str(build_tiny_unet(_session_dir() / "tiny-unet"))


TRANSFORMS = [
    {"__class_fullname__": "HorizontalFlip", "p": 0.5},
    {"__class_fullname__": "Affine", "rotate": [-20, 20], "translate_px": [-1, 1], "p": 1.0},
    {"__class_fullname__": "RandomBrightnessContrast", "brightness_limit": 0.3, "contrast_limit": 0.3, "p": 0.8},
]

EXAMPLES = {
    "diffusion": lambda tmp_path: {
        "model": tiny_sd_path(),
        "num_per_label": 1,
        "steps": 2,
        "batch_size": 2,
        "prompts": ["a photo of a {label}", "a drawing of the digit {label}"],
        "negative_prompt": "blurry",
        "threads": 1,  # tiny model: one thread is fastest
    },
    "albumentations": lambda tmp_path: {"transforms": TRANSFORMS, "num_per_parent": 2},
}
