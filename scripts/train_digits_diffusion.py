"""Train (and optionally evaluate) the small class-conditional digits diffusion model.

The model ships in ``models/digits-diffusion`` for the offline quickstart. It is a diffusers
``UNet2DModel`` (pixel space, 1 x 8 x 8, class embeddings for the labels "0".."9" plus one null
class for classifier-free guidance) trained with a ``DDPMScheduler`` on the TRAIN rows of
``synth.splits.digits_split(eval_fraction=0.3, seed=0)``, and saved with a ``DDIMScheduler``
config that samples well in 10-50 steps.

Reads:  scikit-learn's digits (through ``synth.splits.digits_split``; eval rows are never used to fit).
Writes: OUT/unet/{config.json, diffusion_pytorch_model.safetensors}, OUT/scheduler/scheduler_config.json,
        OUT/synth_model.json (metadata), OUT/README.md (model card).

Example::

    python scripts/train_digits_diffusion.py --out models/digits-diffusion          # train (~4.5 min, 2 idle cores)
    python scripts/train_digits_diffusion.py --out models/digits-diffusion --eval   # train, then evaluate
    python scripts/eval_digits_diffusion.py --model models/digits-diffusion         # evaluate only

Loading and sampling use only the standard diffusers code path::

    unet = UNet2DModel.from_pretrained(path, subfolder="unet", use_safetensors=True)
    scheduler = DDIMScheduler.from_pretrained(path, subfolder="scheduler")
    images = sample(unet, scheduler, labels, [torch.Generator().manual_seed(s) for s in seeds], steps=25)
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Idle OpenMP threads sleep instead of spinning: on a busy shared machine the default spin-wait made
# 2-thread training ~10x slower; results are bit-identical either way (same work split per thread count).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]

CLASS_NAMES = [str(i) for i in range(10)]
NULL_CLASS = len(CLASS_NAMES)  # index of the "no label" embedding used for classifier-free guidance
IMAGE_SIZE = 8  # what the user sees: 8 x 8 uint8 grayscale, like the real data
SAMPLE_SIZE = 8  # what the UNet works on natively (no padding or resizing needed)
RECOMMENDED_STEPS = 25
RECOMMENDED_GUIDANCE = 1.5  # classifier-free guidance; 1.0 = off (see the eval script: 1.5 beat 1.0 and 2.0)
SCHEMA = "synth-model/1"


# --------------------------------------------------------------------------------------------
# Pure helpers (copy these into a generator step; they depend only on torch, numpy, diffusers)
# --------------------------------------------------------------------------------------------


def to_model_range(images_u8: np.ndarray) -> torch.Tensor:
    """uint8 [n, 8, 8] in 0..255 -> float32 [n, 1, 8, 8] in [-1, 1]."""
    x = torch.from_numpy(np.asarray(images_u8, dtype=np.float32))
    return (x / 127.5 - 1.0).unsqueeze(1)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """float [n, 1, H, W] in [-1, 1] -> uint8 [n, H, W] in 0..255 (round half to even, clipped)."""
    x = ((x.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255)
    return x[:, 0].to(torch.uint8).numpy()


@torch.no_grad()
def sample(
    unet,
    scheduler,
    labels: Sequence[int],
    generators: Sequence[torch.Generator],
    steps: int,
    guidance_scale: float | None = None,
) -> np.ndarray:
    """Sample one 8 x 8 digit per label; returns uint8 numpy [n, 8, 8].

    Each sample's initial noise comes from its own generator (``torch.randn(shape, generator=g_i)``,
    then stacked), and the same list of generators is passed to ``scheduler.step``, so a sample is
    fixed by (its label, its generator's seed, steps, guidance) whatever else is in the batch.
    ``guidance_scale`` None or 1.0: plain conditional sampling; > 1: classifier-free guidance
    against the null class (index ``unet.config.num_class_embeds - 1``).
    The scheduler is mutated (``set_timesteps``); use one scheduler per thread.
    """
    labels_t = torch.as_tensor(list(labels), dtype=torch.long)
    if labels_t.ndim != 1 or len(labels_t) != len(generators):
        raise ValueError(f"need one generator per label: got {len(labels_t)} labels, {len(generators)} generators")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    n_classes = unet.config.num_class_embeds
    if len(labels_t) and (labels_t.min() < 0 or labels_t.max() >= n_classes - 1):
        raise ValueError(f"labels must be in 0..{n_classes - 2}, got {labels_t.tolist()}")
    device, dtype = unet.device, unet.dtype
    c, s = unet.config.in_channels, unet.config.sample_size
    if len(labels_t) == 0:
        return np.zeros((0, s, s), dtype=np.uint8)

    x = torch.stack([torch.randn((c, s, s), generator=g, dtype=torch.float32) for g in generators])
    x = (x * scheduler.init_noise_sigma).to(device=device, dtype=dtype)
    y = labels_t.to(device)
    guided = guidance_scale is not None and guidance_scale != 1.0
    if guided:
        y = torch.cat([y, torch.full_like(y, n_classes - 1)])

    scheduler.set_timesteps(steps)
    for t in scheduler.timesteps:
        model_in = scheduler.scale_model_input(x, t)
        if guided:
            out = unet(torch.cat([model_in, model_in]), t, class_labels=y).sample
            cond, uncond = out.chunk(2)
            out = uncond + guidance_scale * (cond - uncond)
        else:
            out = unet(model_in, t, class_labels=y).sample
        x = scheduler.step(out, t, x, generator=list(generators)).prev_sample
    return to_uint8(x)


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _digits_split():
    try:
        from synth.splits import digits_split
    except ImportError:  # running the script from a checkout without `pip install -e .`
        sys.path.insert(0, str(REPO_ROOT))
        from synth.splits import digits_split
    return digits_split


def build_unet():
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=SAMPLE_SIZE,
        in_channels=1,
        out_channels=1,
        block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        layers_per_block=1,
        norm_num_groups=8,
        num_class_embeds=len(CLASS_NAMES) + 1,  # + the null class
    )


def scheduler_kwargs() -> dict:
    return dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon", clip_sample=True)


def train(args) -> tuple[object, dict]:
    from diffusers import DDPMScheduler

    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(args.seed)

    images, labels, is_eval = _digits_split()(eval_fraction=0.3, seed=0)
    x_all = to_model_range(images[~is_eval])
    y_all = torch.from_numpy(labels[~is_eval]).long()
    n = len(x_all)

    unet = build_unet()
    ema = copy.deepcopy(unet).eval().requires_grad_(False)
    noise_sched = DDPMScheduler(**scheduler_kwargs())
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.0)
    warmup = min(100, args.train_steps // 10)

    def lr_at(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, args.train_steps - warmup)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    print(f"training on {n} train rows (eval rows excluded); {sum(p.numel() for p in unet.parameters()):,} params")
    perm, pos = torch.randperm(n, generator=g), 0
    t0, c0 = time.perf_counter(), time.process_time()
    running = 0.0
    unet.train()
    for step in range(args.train_steps):
        if pos + args.batch_size > n:
            perm, pos = torch.randperm(n, generator=g), 0
        idx = perm[pos : pos + args.batch_size]
        pos += args.batch_size
        x0, y = x_all[idx], y_all[idx].clone()
        drop = torch.rand(len(y), generator=g) < args.label_dropout
        y[drop] = NULL_CLASS
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(0, noise_sched.config.num_train_timesteps, (len(y),), generator=g)
        xt = noise_sched.add_noise(x0, noise, t)
        loss = torch.nn.functional.mse_loss(unet(xt, t, class_labels=y).sample, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        decay = min(args.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters(), strict=True):
                pe.lerp_(p, 1 - decay)
        running = 0.98 * running + 0.02 * loss.item() if step else loss.item()
        if (step + 1) % args.log_every == 0 or step + 1 == args.train_steps:
            print(f"step {step + 1}/{args.train_steps} loss {running:.4f} ({time.perf_counter() - t0:.0f}s)", flush=True)
    train_seconds = time.perf_counter() - t0
    info = {
        "train_rows": n,
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(time.process_time() - c0, 1),
        "final_loss_ema": round(running, 4),
    }
    return ema, info


def save(out: Path, unet, args, info: dict) -> None:
    from diffusers import DDIMScheduler

    out.mkdir(parents=True, exist_ok=True)
    for stale in list(out.rglob("*.bin")) + list(out.rglob("*.pt")) + list(out.rglob("*.pth")):
        stale.unlink()
    unet.save_pretrained(out / "unet", safe_serialization=True)
    DDIMScheduler(
        **scheduler_kwargs(), clip_sample_range=1.0, set_alpha_to_one=True, steps_offset=0, timestep_spacing="trailing"
    ).save_pretrained(out / "scheduler")
    meta = {
        "schema": SCHEMA,
        "name": "digits-diffusion",
        "task": "class-conditional image generation",
        "unet_class": "UNet2DModel",
        "scheduler_class": "DDIMScheduler",
        "training_scheduler_class": "DDPMScheduler",
        "class_labels": CLASS_NAMES,
        "num_class_embeds": len(CLASS_NAMES) + 1,
        "guidance": {
            "supported": True,
            "method": "classifier-free",
            "null_class_index": NULL_CLASS,
            "label_dropout": args.label_dropout,
            "recommended_scale": RECOMMENDED_GUIDANCE,
        },
        "recommended_steps": RECOMMENDED_STEPS,
        "image_size": [IMAGE_SIZE, IMAGE_SIZE],
        "sample_size": SAMPLE_SIZE,
        "channels": 1,
        "mode": "L",
        "dtype": "uint8",
        "model_value_range": [-1.0, 1.0],
        "output_value_range": [0, 255],
        "postprocess": "uint8 = clip(round((x + 1) * 127.5), 0, 255); take channel 0; no resize (sample_size == image_size)",
        "training_data": {
            "dataset": "scikit-learn digits (sklearn.datasets.load_digits), pixels 0..16 scaled to 0..255",
            "split": "train rows of synth.splits.digits_split(eval_fraction=0.3, seed=0) (is_eval == False)",
            "train_rows": info.get("train_rows"),
            "eval_rows_used": False,
        },
        "training": {
            "command": (
                f"python scripts/train_digits_diffusion.py --out {args.out_display} --train-steps {args.train_steps} "
                f"--seed {args.seed} --threads {args.threads}"
            ),
            "seed": args.seed,
            "train_steps": args.train_steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "ema_decay": args.ema_decay,
            "threads": args.threads,
            "train_seconds": info.get("train_seconds"),
            "train_cpu_seconds": info.get("train_cpu_seconds"),
            "torch_version": torch.__version__,
            "diffusers_version": __import__("diffusers").__version__,
        },
        "license": "BSD-3-Clause",
        "license_note": "Trained only on scikit-learn's digits (BSD-3-Clause, via scikit-learn; originally the "
        "UCI ML hand-written digits data set). Weights released under the same terms.",
        "weights_format": "safetensors",
        "weights_sha256": hashlib.sha256((out / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()).hexdigest(),
    }
    (out / "synth_model.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "README.md").write_text(render_card(meta))


def render_card(meta: dict) -> str:
    """The model card (README.md), with the evaluation numbers when ``meta`` has them."""
    g = meta["guidance"]
    lines = [
        "# digits-diffusion",
        "",
        "A tiny class-conditional pixel-space diffusion model (about 650k parameters, 2.6 MB) that draws",
        '8 x 8 grayscale hand-written digits "0".."9". It is synth\'s offline quickstart image generator.',
        "",
        "- **Architecture**: diffusers `UNet2DModel`, 1 x 8 x 8 (no padding or resizing), block_out_channels",
        "  (32, 64), one ResNet layer per block, class embeddings for the 10 digits plus a null class",
        f"  (index {g['null_class_index']}) for classifier-free guidance.",
        f"- **Training**: `{meta['training']['command']}` (seeded, CPU; bit-identical",
        "  weights for the same thread count and library versions). DDPM objective (epsilon, cosine betas,",
        f"  1000 steps), AdamW, EMA weights, {g['label_dropout']:.0%} label dropout.",
        "- **Data**: only the train rows of `synth.splits.digits_split(eval_fraction=0.3, seed=0)`",
        f"  ({meta['training_data']['train_rows']} scikit-learn digits); the eval rows were never seen.",
        f"- **Sampling**: `{meta['scheduler_class']}` (trailing spacing, eta 0), {meta['recommended_steps']} steps,",
        f"  guidance scale {g['recommended_scale']} recommended (1.0 = off). Output: uint8",
        '  `round((x + 1) * 127.5)` clipped to 0..255, channel 0, 8 x 8, mode "L".',
        "- **Licence**: BSD-3-Clause, like the scikit-learn digits data it was trained on (UCI hand-written",
        "  digits, distributed with scikit-learn).",
        "",
    ]
    ev = meta.get("evaluation")
    if ev:
        lines += [
            "## Evaluation",
            "",
            f"`{ev['command']}`: {ev['n_per_class']} images per class, each from its own seeded generator,",
            f"classified by {ev['classifier']} trained on the real train split",
            f"(real eval accuracy {ev['real_eval_accuracy']:.1%}). Label consistency = its accuracy on the",
            "generated images with their intended labels. Nearest-neighbour distance: L2 on pixels / 255 to the",
            f"closest real train image (real eval images: median {ev['real_eval_median_nn_dist_to_train']:.3f}).",
            "",
            "| steps | guidance | label consistency | exact train copies | median nn distance | ms / image (batch 100) |",
            "|---|---|---|---|---|---|",
        ]
        for r in ev["runs"]:
            lines.append(
                f"| {r['steps']} | {r['guidance_scale'] or 1.0} | {r['label_consistency']:.1%} | "
                f"{r['exact_copies_of_train']} | {r['median_nn_dist_to_train']:.3f} | {r['ms_per_image_batch100']:.1f} |"
            )
        lat = ", ".join(f"{v['ms_per_image']:.0f} ms at guidance {k}" for k, v in ev.get("batch1_latency", {}).items())
        lines += [
            "",
            f"Timings: {ev['threads']} CPU threads, OMP_WAIT_POLICY=PASSIVE, 1-minute load average "
            f"{ev.get('load_average_1min')} on a shared machine; one image at a time: {lat}.",
            "",
        ]
    lines += [
        "## Use",
        "",
        "```python",
        "import torch",
        "from diffusers import DDIMScheduler, UNet2DModel",
        "",
        'unet = UNet2DModel.from_pretrained("models/digits-diffusion", subfolder="unet", use_safetensors=True)',
        'scheduler = DDIMScheduler.from_pretrained("models/digits-diffusion", subfolder="scheduler")',
        "labels = torch.tensor([3, 7])",
        "x = torch.stack([torch.randn((1, 8, 8), generator=torch.Generator().manual_seed(s)) for s in (0, 1)])",
        "scheduler.set_timesteps(25)",
        "with torch.no_grad():",
        "    for t in scheduler.timesteps:",
        "        x = scheduler.step(unet(x, t, class_labels=labels).sample, t, x).prev_sample",
        "images = ((x[:, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()  # [2, 8, 8]",
        "```",
        "",
        "`sample(unet, scheduler, labels, generators, steps, guidance_scale)` in",
        "`scripts/train_digits_diffusion.py` is the same loop with one generator per sample and guidance.",
        "",
        "Limitations: 8 x 8 digits only; a toy for pipelines and tests, not a benchmark model.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="models/digits-diffusion", help="model folder to write (default: %(default)s)")
    p.add_argument("--train-steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--ema-decay", type=float, default=0.995)
    p.add_argument("--label-dropout", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads; weights are bit-identical per thread count")
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--eval", action="store_true", help="then run scripts/eval_digits_diffusion.py on --out")
    args = p.parse_args(argv)
    args.out_display = args.out
    out = Path(args.out)

    t0 = time.perf_counter()
    unet, info = train(args)
    save(out, unet, args, info)
    print(
        f"training time: {info['train_seconds']:.1f}s wall, {info['train_cpu_seconds']:.1f}s CPU "
        f"(total {time.perf_counter() - t0:.1f}s); saved to {out}"
    )
    if args.eval:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from eval_digits_diffusion import main as eval_main

        return eval_main(["--model", args.out, "--threads", str(args.threads)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
