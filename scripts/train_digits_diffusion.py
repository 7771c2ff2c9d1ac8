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

    python scripts/train_digits_diffusion.py --out models/digits-diffusion          # train (~4 min, 2 cores)
    python scripts/train_digits_diffusion.py --out models/digits-diffusion --eval   # train, then evaluate
    python scripts/train_digits_diffusion.py --out models/digits-diffusion --eval-only

Loading and sampling use only the standard diffusers code path::

    unet = UNet2DModel.from_pretrained(path, subfolder="unet", use_safetensors=True)
    scheduler = DDIMScheduler.from_pretrained(path, subfolder="scheduler")
    images = sample(unet, scheduler, labels, [torch.Generator().manual_seed(s) for s in seeds], steps=25)
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]

CLASS_NAMES = [str(i) for i in range(10)]
NULL_CLASS = len(CLASS_NAMES)  # index of the "no label" embedding used for classifier-free guidance
IMAGE_SIZE = 8  # what the user sees: 8 x 8 uint8 grayscale, like the real data
SAMPLE_SIZE = 8  # what the UNet works on natively (no padding or resizing needed)
RECOMMENDED_STEPS = 25
RECOMMENDED_GUIDANCE = 2.0
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
    t0 = time.perf_counter()
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
    info = {"train_rows": n, "train_seconds": round(train_seconds, 1), "final_loss_ema": round(running, 4)}
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
            "command": f"python scripts/train_digits_diffusion.py --out {args.out_display}",
            "seed": args.seed,
            "train_steps": args.train_steps,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "ema_decay": args.ema_decay,
            "threads": args.threads,
            "train_seconds": info.get("train_seconds"),
            "torch_version": torch.__version__,
            "diffusers_version": __import__("diffusers").__version__,
        },
        "license": "BSD-3-Clause",
        "license_note": "Trained only on scikit-learn's digits (BSD-3-Clause, via scikit-learn; originally the "
        "UCI ML hand-written digits data set). Weights released under the same terms.",
        "weights_format": "safetensors",
    }
    (out / "synth_model.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out / "README.md").write_text(MODEL_CARD)


MODEL_CARD = """\
# digits-diffusion

A tiny class-conditional pixel-space diffusion model (about 650k parameters, 2.6 MB) that draws
8 x 8 grayscale hand-written digits "0".."9". It is synth's offline quickstart image generator.

- **Architecture**: diffusers `UNet2DModel`, 1 x 8 x 8, block_out_channels (32, 64), one ResNet
  layer per block, class embeddings for the 10 digits plus a null class (index 10) for
  classifier-free guidance.
- **Training**: `python scripts/train_digits_diffusion.py --out models/digits-diffusion`
  (seeded, CPU, a few minutes on 2 cores). DDPM objective (epsilon, cosine betas, 1000 steps),
  AdamW, EMA weights, 10% label dropout.
- **Data**: only the train rows of `synth.splits.digits_split(eval_fraction=0.3, seed=0)` (scikit-learn
  digits); the eval rows were never seen.
- **Sampling**: `DDIMScheduler` (trailing spacing, eta 0), 25 steps recommended, guidance 2.0
  optional. Output: uint8 `round((x + 1) * 127.5)` clipped to 0..255, 8 x 8, mode "L".
- **Evaluation**: `python scripts/train_digits_diffusion.py --out models/digits-diffusion --eval-only`
  reports the label consistency of 500 generated images (50 per class) under an SVC trained on
  the real train split; the numbers are in `synth_model.json` under `evaluation`.
- **Licence**: BSD-3-Clause, like the scikit-learn digits data it was trained on (UCI hand-written
  digits, distributed with scikit-learn).

```python
import torch
from diffusers import DDIMScheduler, UNet2DModel

unet = UNet2DModel.from_pretrained("models/digits-diffusion", subfolder="unet", use_safetensors=True)
scheduler = DDIMScheduler.from_pretrained("models/digits-diffusion", subfolder="scheduler")
labels = torch.tensor([3, 7])
x = torch.stack([torch.randn((1, 8, 8), generator=torch.Generator().manual_seed(s)) for s in (0, 1)])
scheduler.set_timesteps(25)
for t in scheduler.timesteps:
    x = scheduler.step(unet(x, t, class_labels=labels).sample, t, x).prev_sample
images = ((x[:, 0] + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()  # [2, 8, 8]
```

Limitations: 8 x 8 digits only; a toy for pipelines and tests, not a benchmark model.
"""


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def evaluate(out: Path, steps: int, guidance_scales: Sequence[float | None], per_class: int = 50, threads: int = 2) -> dict:
    """Label consistency of generated digits under a classifier trained on the real train split."""
    from diffusers import DDIMScheduler, UNet2DModel
    from sklearn.svm import SVC

    torch.set_num_threads(threads)
    images, labels, is_eval = _digits_split()(eval_fraction=0.3, seed=0)
    feats = images.reshape(len(images), -1).astype(np.float32) / 255.0
    clf = SVC(gamma="scale", C=10.0).fit(feats[~is_eval], labels[~is_eval])
    real_acc = float((clf.predict(feats[is_eval]) == labels[is_eval]).mean())
    print(f"classifier (SVC on real train pixels): real eval accuracy {real_acc:.4f} on {int(is_eval.sum())} rows")

    unet = UNet2DModel.from_pretrained(out, subfolder="unet", use_safetensors=True).eval()
    scheduler = DDIMScheduler.from_pretrained(out, subfolder="scheduler")
    want = np.repeat(np.arange(len(CLASS_NAMES)), per_class)
    result: dict = {"classifier": "sklearn SVC(gamma='scale', C=10) on pixels/255", "real_eval_accuracy": round(real_acc, 4)}
    runs = []
    for gs in guidance_scales:
        gens = [torch.Generator().manual_seed(10_000 + i) for i in range(len(want))]
        t0 = time.perf_counter()
        gen = np.concatenate([sample(unet, scheduler, want[i : i + 100], gens[i : i + 100], steps, gs) for i in range(0, len(want), 100)])
        secs = time.perf_counter() - t0
        pred = clf.predict(gen.reshape(len(gen), -1).astype(np.float32) / 255.0)
        acc = float((pred == want).mean())
        per = {CLASS_NAMES[c]: round(float((pred[want == c] == c).mean()), 3) for c in range(len(CLASS_NAMES))}
        distinct = len({g.tobytes() for g in gen})
        print(
            f"steps {steps} guidance {gs}: label consistency {acc:.4f} on {len(gen)} images; "
            f"{1000 * secs / len(gen):.2f} ms/image (batches of 100); {distinct} distinct; per class {per}"
        )
        runs.append(
            {"steps": steps, "guidance_scale": gs, "n_images": len(gen), "label_consistency": round(acc, 4),
             "per_class": per, "ms_per_image_batch100": round(1000 * secs / len(gen), 2), "distinct_images": distinct}
        )
    # single-image latency (batch of 1), the worst case for a per-sample generator step
    g1 = [torch.Generator().manual_seed(0)]
    t0 = time.perf_counter()
    for i in range(10):
        sample(unet, scheduler, [i], g1, steps)
    result["ms_per_image_batch1"] = round(100 * (time.perf_counter() - t0), 2)
    print(f"steps {steps}: {result['ms_per_image_batch1']:.2f} ms/image at batch size 1")
    result["runs"] = runs
    result["threads"] = threads
    return result


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="models/digits-diffusion", help="model folder to write (default: %(default)s)")
    p.add_argument("--train-steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--ema-decay", type=float, default=0.995)
    p.add_argument("--label-dropout", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--eval", action="store_true", help="after training, evaluate the saved model")
    p.add_argument("--eval-only", action="store_true", help="evaluate the model in --out without training")
    p.add_argument("--eval-steps", type=int, default=RECOMMENDED_STEPS)
    args = p.parse_args(argv)
    args.out_display = args.out
    out = Path(args.out)

    if not args.eval_only:
        t0 = time.perf_counter()
        unet, info = train(args)
        save(out, unet, args, info)
        print(f"training time: {info['train_seconds']:.1f}s (total {time.perf_counter() - t0:.1f}s); saved to {out}")
    if args.eval or args.eval_only:
        meta_path = out / "synth_model.json"
        if not meta_path.exists():
            print(f"error: {meta_path} not found; train first (drop --eval-only)", file=sys.stderr)
            return 2
        result = evaluate(out, args.eval_steps, [None, RECOMMENDED_GUIDANCE], threads=args.threads)
        meta = json.loads(meta_path.read_text())
        meta["evaluation"] = result
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
